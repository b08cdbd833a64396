"""What an RL checkpoint adds for `--resume` to continue exactly.

The directory itself is written by `todrl.checkpoint.save_checkpoint`, a
plain `save_pretrained` checkpoint that the evaluator and PEFT load without
todrl.  Its training file adds the optimizer, the trainable tensors (value
head included), the mask snapshot, the KL controller and AdaLoRA's importance
estimates, gathered and restored here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from peft.tuners.adalora import AdaLoraModel
from torch import nn


def trainable_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in module.named_parameters() if p.requires_grad}


@torch.no_grad()
def load_trainable_state(module: nn.Module, saved: dict[str, torch.Tensor], where: Path) -> None:
    params = {name: p for name, p in module.named_parameters() if p.requires_grad}
    if set(params) != set(saved):
        missing, unexpected = sorted(set(params) - set(saved)), sorted(set(saved) - set(params))
        raise ValueError(f"{where}: trainable tensors differ from this run's (missing {missing[:3]}, unexpected "
                         f"{unexpected[:3]}); resume with the same model and adapter settings")
    for name, param in params.items():
        param.copy_(saved[name])


def allocator_state(policy: nn.Module) -> dict[str, Any] | None:
    """AdaLoRA/SUCG importance estimates and the last rank pattern; None for other adapters."""
    tuner = getattr(policy, "base_model", None)
    if not isinstance(tuner, AdaLoraModel):
        return None
    allocator = tuner.rankallocator
    state = {key: getattr(allocator, key) for key in ("ipt", "exp_avg_ipt", "exp_avg_unc")}
    state["rank_pattern"] = tuner.peft_config[tuner.trainable_adapter_name].rank_pattern
    generator = getattr(allocator, "generator", None)
    if isinstance(generator, torch.Generator):
        state["generator"] = generator.get_state()
    return state


def load_allocator_state(policy: nn.Module, state: dict[str, Any] | None) -> None:
    if state is None:
        return
    tuner = policy.base_model
    allocator = tuner.rankallocator
    for key in ("ipt", "exp_avg_ipt", "exp_avg_unc"):
        setattr(allocator, key, state[key])
    tuner.peft_config[tuner.trainable_adapter_name].rank_pattern = state["rank_pattern"]
    if "generator" in state:
        allocator.generator.set_state(state["generator"])
