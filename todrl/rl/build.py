"""What an RL run starts from: the episodes, the SFT policy with its adapter, and the models around it.

The memory design lives here: the KL reference is the policy with its adapter
switched off, NLPO's mask policy a second frozen adapter, the critic a linear
head; whole-model copies are made only for full fine-tuning.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from accelerate import Accelerator

from todrl.adapters import apply_adapter
from todrl.checkpoint import save_checkpoint
from todrl.data.records import Dialogue
from todrl.data import span_vocabulary
from todrl.format import Example
from todrl.instruct import checkpoint_format, checkpoint_task, turn_examples
from todrl.models import (
    enable_gradient_checkpointing,
    link_base,
    load_merged,
    load_policy,
    load_quantized,
    set_precision,
)
from todrl.rl.config import DEFAULT_SFT, RLConfig
from todrl.rl.nlpo import MaskPolicy
from todrl.rl.reference import Reference
from todrl.rl.value import ActorCritic, ValueHead, hidden_size_of


def sft_checkpoint(name: str) -> str:
    """The checkpoint to start from: an SFT run directory resolves to its best/, else its last/."""
    path = Path(name)
    for child in ("best", "last"):
        if (path / child).is_dir():
            return str(path / child)
    if not path.exists() and name == DEFAULT_SFT:
        raise FileNotFoundError(
            f"no SFT checkpoint at {name}: RL starts from a supervised policy. Run `python -m todrl.sft` first "
            "(it writes runs/sft/default), or pass --model PATH to an SFT run or checkpoint directory"
        )
    return name


def contexts(cfg: RLConfig) -> tuple[list[Example], list[Dialogue]]:
    """Training turns (the episodes) and the dev dialogues evaluated along the way."""
    train, dev = cfg.load_train_dev()
    vocabulary = span_vocabulary(cfg.dataset, cfg.data_dir)
    examples = turn_examples(cfg.format, train, cfg.dataset, cfg.data_dir, vocabulary, seed=cfg.seed)
    if cfg.max_contexts:
        examples = examples[: cfg.max_contexts]
    if not examples:
        raise ValueError(f"{cfg.dataset} split {cfg.train_split!r}: no training turns to use as episodes")
    return examples, dev[: cfg.eval_dialogues] if cfg.eval_dialogues else dev


def build_policy(cfg: RLConfig, out: Path, total_steps: int, accelerator: Accelerator):
    """The SFT policy with a fresh adapter; its starting weights are also the KL reference.

    An SFT adapter is merged into its base first, so that switching the RL
    adapter off yields the SFT policy (not the pre-SFT base).  Adapter runs
    save that starting model once to `out/base`, which the adapter
    checkpoints name as their base.
    """
    base_dir = out / "base"
    if cfg.resume and cfg.adapter.type != "full":
        model, tokenizer = load_policy(base_dir)
    else:
        start = sft_checkpoint(cfg.model)
        if checkpoint_task(start) != "e2e":
            raise ValueError(f"the policy at {start} was trained for task {checkpoint_task(start)}; RL tunes end-to-end "
                             "(e2e) policies, whose generations the task reward reads")
        if checkpoint_format(start) != cfg.format.type:
            raise ValueError(f"the SFT policy at {start} was trained in the {checkpoint_format(start)} format; "
                             f"pass --format {checkpoint_format(start)}")
        model, tokenizer = load_merged(start)
        if cfg.adapter.type != "full" and accelerator.is_main_process:
            save_checkpoint(base_dir, set_precision(model, cfg.precision), tokenizer,
                            {"role": "starting policy (SFT) of the RL adapter checkpoints"})
    if cfg.quantize != "none":
        model = load_quantized(base_dir, cfg.quantize, cfg.precision)[0]
    else:
        model = set_precision(model, cfg.precision)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
        for module in model.modules():  # updates then run in training mode (checkpointing needs it), still without dropout
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
    value_model = None
    if cfg.value_model == "separate":
        critic_adapter = cfg.adapter if cfg.adapter.type in ("full", "lora") else dataclasses.replace(cfg.adapter, type="lora")
        value_model = apply_adapter(copy.deepcopy(model), critic_adapter, total_steps)
    policy = apply_adapter(model, cfg.adapter, total_steps)
    link_base(policy, base_dir, out / "last")  # best/ sits beside last/ too
    return policy, tokenizer, value_model


@dataclass
class RLModels:
    """Every model an RL run holds: policy + critic (the agent), the KL reference, NLPO's mask policy."""

    agent: ActorCritic
    reference: Reference
    mask_policy: MaskPolicy | None
    policy_bytes: int
    """Weights of the policy alone (base model and its trainable adapter)."""
    held_bytes: int
    """Weights of everything above together, each tensor counted once."""

    def memory_line(self) -> str:
        reference = "adapter switched off" if self.reference.copy is None else "frozen copy"
        mask = "none" if self.mask_policy is None else "adapter snapshot" if self.mask_policy.copy is None else "frozen copy"
        critic = "head" if self.agent.value_model is None else "separate model + head"
        return (f"model weights held: {self.held_bytes / 2**20:.1f} MiB, {self.held_bytes / self.policy_bytes:.3f} x the "
                f"policy's own {self.policy_bytes / 2**20:.1f} MiB (reference: {reference}; mask policy: {mask}; "
                f"value function: {critic})")


def assemble(policy: torch.nn.Module, value_model: torch.nn.Module | None, algo: str, device: torch.device) -> RLModels:
    """Reference, mask policy and critic around a policy; copies of the whole model only where there is no adapter."""
    policy.to(device)
    policy_bytes = weight_bytes(policy)
    reference = Reference(policy)
    mask_policy = MaskPolicy(policy) if algo == "nlpo" else None
    agent = ActorCritic(policy, ValueHead(hidden_size_of(policy.config)), value_model).to(device).eval()
    held = weight_bytes(agent, reference.copy, mask_policy.copy if mask_policy is not None else None)
    return RLModels(agent, reference, mask_policy, policy_bytes, held)


def weight_bytes(*modules: torch.nn.Module | None) -> int:
    """Bytes of the distinct weight tensors these modules hold together (shared and tied tensors count once)."""
    seen: dict[int, int] = {}
    for module in modules:
        if module is not None:
            for tensor in [*module.parameters(), *module.buffers()]:
                seen[id(tensor)] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


@lru_cache(maxsize=4)
def _order(size: int, seed: int, epoch: int) -> list[int]:
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def episode_indices(iteration: int, size: int, per_process: int, processes: int, rank: int, seed: int) -> list[int]:
    """Which training turns this process rolls out at `iteration`: a fresh seeded shuffle per pass over the data."""
    start = (iteration * processes + rank) * per_process
    return [_order(size, seed, k // size)[k % size] for k in range(start, start + per_process)]
