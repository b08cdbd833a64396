"""Trainable parameters for the SFT and RL loops: full fine-tuning, LoRA, AdaLoRA or SUCG.

Every loop gets its parameters here and calls `after_optimizer_step` once per
optimizer step, so the four methods are interchangeable by one config field.
AdaLoRA is PEFT's; SUCG is AdaLoRA with the importance score of `todrl.sucg`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from peft import AdaLoraConfig, LoraConfig, PeftModel, TaskType, get_peft_model
from peft.tuners.adalora import AdaLoraModel
from peft.tuners.lora import LoraModel
from torch import nn
from transformers.pytorch_utils import Conv1D

from todrl.sucg import SUCGRankAllocator

AdapterType = Literal["full", "lora", "adalora", "sucg"]
SucgSchedule = Literal["allocation", "step"]
ADAPTER_TYPES: tuple[str, ...] = get_args(AdapterType)
SUCG_SCHEDULES: tuple[str, ...] = get_args(SucgSchedule)

_LLAMA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
_DEFAULT_TARGETS: dict[str, list[str]] = {
    "llama": _LLAMA_TARGETS,
    "mistral": _LLAMA_TARGETS,
    "qwen2": _LLAMA_TARGETS,
    "qwen3": _LLAMA_TARGETS,
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


@dataclass
class AdapterConfig:
    """Which parameters train, and AdaLoRA's rank budget.

    `tinit` / `tfinal` (AdaLoRA's warm-up before pruning and fine-tuning after
    it) below 1 are fractions of the total optimizer steps, so one preset fits
    runs of any length; whole numbers from 1 up are steps.
    """

    type: AdapterType = "lora"
    """full | lora | adalora | sucg (AdaLoRA with SUCG importance)."""
    r: int = 8
    """LoRA rank (lora only; AdaLoRA starts at init_r)."""
    lora_alpha: int = 16
    """Scale of the low-rank update: lora_alpha / rank."""
    lora_dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: list[str] | None = None
    """Linear layers to adapt; None picks the attention and FFN projections of the model type."""
    init_r: int = 12
    """AdaLoRA's initial rank of every adapted matrix."""
    target_r: int = 8
    """AdaLoRA's final average rank: the budget is target_r * number of adapted matrices."""
    tinit: float = 0.1
    """Warm-up before the budget phase: steps, or a fraction of them when below 1."""
    tfinal: float = 0.2
    """Fine-tuning at the final ranks after the budget phase: steps, or a fraction of them when below 1."""
    delta_t: int = 10
    """Optimizer steps between two rank allocations."""
    beta1: float = 0.85
    """EMA of the sensitivity (Eq. 5)."""
    beta2: float = 0.85
    """EMA of the uncertainty (Eq. 7)."""
    orth_reg_weight: float = 0.5
    """Weight of AdaLoRA's orthogonality regularizer of the P and Q factors."""
    sucg_repeats: int = 5
    """Random coalitions per SUCG score, at least (seed 000 uses 5): each row of the batch draws its own, so a batch
    of this many rows or more is scored in one extra pass."""
    sucg_every: SucgSchedule = "allocation"
    """allocation: SUCG scores only the steps that allocate ranks (1 + 1/delta_t passes per step in the budget
    phase); step: every step until the final allocation (2 passes per step)."""
    sucg_seed: int = 0
    """Seed of the Bernoulli coalitions, independent of the training RNG."""

    def __post_init__(self) -> None:
        if self.type not in ADAPTER_TYPES:
            raise ValueError(f"adapter type {self.type!r} is not one of {', '.join(ADAPTER_TYPES)}")
        _require(self.r >= 1, f"r must be >= 1, got {self.r}")
        _require(self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha}")
        _require(0.0 <= self.lora_dropout < 1.0, f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.target_modules is not None:
            _require(
                isinstance(self.target_modules, list)
                and len(self.target_modules) > 0
                and all(isinstance(t, str) and t for t in self.target_modules),
                f"target_modules must be a non-empty list of module names or None, got {self.target_modules!r}",
            )
        _require(
            1 <= self.target_r <= self.init_r,
            f"AdaLoRA ranks need 1 <= target_r <= init_r, got target_r={self.target_r}, init_r={self.init_r}",
        )
        for name in ("tinit", "tfinal"):
            value = getattr(self, name)
            _require(
                not isinstance(value, bool) and isinstance(value, (int, float)) and (value < 1 or value == int(value))
                and value >= 0,
                f"{name} must be a fraction of the steps in [0, 1) or a whole number of steps, got {value!r}",
            )
        _require(self.delta_t >= 1, f"delta_t must be >= 1, got {self.delta_t}")
        _require(0.0 < self.beta1 < 1.0, f"beta1 must be in (0, 1), got {self.beta1}")
        _require(0.0 < self.beta2 < 1.0, f"beta2 must be in (0, 1), got {self.beta2}")
        _require(self.orth_reg_weight >= 0, f"orth_reg_weight must be >= 0, got {self.orth_reg_weight}")
        _require(self.sucg_repeats >= 1, f"sucg_repeats must be >= 1, got {self.sucg_repeats}")
        if self.sucg_every not in SUCG_SCHEDULES:
            raise ValueError(f"sucg_every {self.sucg_every!r} is not one of {', '.join(SUCG_SCHEDULES)}")

    def schedule_steps(self, total_steps: int) -> tuple[int, int]:
        """(tinit, tfinal) in optimizer steps for a run of `total_steps` steps."""
        return _as_steps(self.tinit, total_steps), _as_steps(self.tfinal, total_steps)


def apply_adapter(model: nn.Module, cfg: AdapterConfig, total_steps: int) -> nn.Module:
    """Make `model` trainable as `cfg` says; returns a PeftModel, or `model` itself for full fine-tuning.

    `total_steps` must be the real number of optimizer steps: AdaLoRA's budget
    schedule is laid out over it and the last allocation happens at its end.
    """
    if cfg.type == "full":
        model.requires_grad_(True)
        return model
    targets = cfg.target_modules if cfg.target_modules is not None else default_target_modules(model)
    check_target_modules(model, targets)
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    common = {
        "task_type": _task_type(model),
        "target_modules": list(targets),
        "lora_alpha": cfg.lora_alpha,
        "lora_dropout": cfg.lora_dropout,
        "fan_in_fan_out": model_type == "gpt2",
    }
    if cfg.type == "lora":
        return get_peft_model(model, LoraConfig(r=cfg.r, **common))

    if isinstance(total_steps, bool) or not isinstance(total_steps, int) or total_steps < 1:
        raise ValueError(f"total_steps must be the number of optimizer steps (an int >= 1), got {total_steps!r}")
    tinit, tfinal = cfg.schedule_steps(total_steps)
    if tinit + tfinal >= total_steps:
        raise ValueError(
            f"AdaLoRA needs a budget phase: tinit ({tinit} steps) + tfinal ({tfinal} steps) must be less than "
            f"total_steps ({total_steps})"
        )
    peft_config = AdaLoraConfig(
        init_r=cfg.init_r,
        target_r=cfg.target_r,
        tinit=tinit,
        tfinal=tfinal,
        deltaT=cfg.delta_t,
        beta1=cfg.beta1,
        beta2=cfg.beta2,
        orth_reg_weight=cfg.orth_reg_weight,
        total_step=total_steps,
        **common,
    )
    peft_model = get_peft_model(model, peft_config)
    if cfg.type == "sucg":
        tuner = peft_model.base_model
        tuner.rankallocator = SUCGRankAllocator(
            tuner.model,
            tuner.peft_config[tuner.trainable_adapter_name],
            tuner.trainable_adapter_name,
            repeats=cfg.sucg_repeats,
            every=cfg.sucg_every,
            seed=cfg.sucg_seed,
        )
    return peft_model


def after_optimizer_step(
    model: nn.Module, global_step: int, loss_closure: Callable[[], torch.Tensor] | None = None
) -> None:
    """Update AdaLoRA's importance and rank budget; a no-op for full fine-tuning and LoRA.

    Call after `optimizer.step()` and before `optimizer.zero_grad()` (the
    importance reads the gradients), with `global_step` the number of optimizer
    steps taken so far, this one included (1 on the first call). SUCG also
    needs `loss_closure`, which recomputes the loss of the current batch: it is
    called on the steps SUCG scores (once, or more when the batch has fewer
    rows than `sucg_repeats`), never backpropagated by the caller.
    """
    tuner = _adalora_tuner(model)
    if tuner is None:
        return
    peft_config = tuner.peft_config[tuner.trainable_adapter_name]
    total_steps = peft_config.total_step
    if not 1 <= global_step <= total_steps:
        raise ValueError(
            f"global_step {global_step} is outside 1..{total_steps}: it counts the optimizer steps taken so far "
            f"(1 after the first), and total_steps given to apply_adapter must be the real number of steps"
        )
    if global_step <= total_steps - peft_config.tfinal:
        _require_gradients(tuner, global_step)
    allocator = tuner.rankallocator
    if isinstance(allocator, SUCGRankAllocator):
        allocator.loss_closure = loss_closure
        try:
            tuner.update_and_allocate(global_step)
        finally:
            allocator.loss_closure = None
    else:
        tuner.update_and_allocate(global_step)


def orthogonality_loss(model: nn.Module) -> torch.Tensor:
    """AdaLoRA's weighted orthogonality regularizer (seed 000 Eq. 3); zero for other adapters.

    PEFT adds it to `outputs.loss` only when the model is called with labels;
    a loop that builds its loss from logits adds this instead (never both).
    """
    tuner = _adalora_tuner(model)
    if tuner is None:
        device = next(model.parameters()).device
        return torch.zeros((), device=device)
    adapter = tuner.trainable_adapter_name
    weight = tuner.peft_config[adapter].orth_reg_weight
    terms = []
    for name, param in tuner.model.named_parameters():
        if adapter not in name or not ("lora_A" in name or "lora_B" in name):
            continue
        gram = param @ param.T if "lora_A" in name else param.T @ param
        identity = torch.eye(gram.shape[0], device=gram.device, dtype=gram.dtype)
        terms.append(torch.linalg.matrix_norm(gram - identity, ord="fro"))
    return weight * torch.stack(terms).mean()


def trainable_parameters(model: nn.Module) -> int:
    """Number of parameters the optimizer updates (shared tensors counted once)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def adapter_ranks(model: nn.Module) -> dict[str, int]:
    """Current rank of every adapted module, by module path; empty for full fine-tuning.

    For AdaLoRA/SUCG this is the last allocation (what `save_pretrained` keeps),
    or init_r before the first one.
    """
    if not isinstance(model, PeftModel):
        return {}
    tuner = model.base_model
    adapter = model.active_adapter
    ranks = {}
    for name, module in tuner.model.named_modules():
        rank_by_adapter = getattr(module, "r", None)
        if isinstance(rank_by_adapter, dict) and adapter in rank_by_adapter and hasattr(module, "lora_A"):
            ranks[name] = int(rank_by_adapter[adapter])
    if isinstance(tuner, AdaLoraModel):
        pattern = tuner.peft_config[adapter].rank_pattern
        if pattern:
            ranks.update(ranks_from_pattern(pattern))
    elif not isinstance(tuner, LoraModel):
        raise TypeError(f"adapter_ranks knows LoRA and AdaLoRA models, not {type(tuner).__name__}")
    return ranks


def ranks_from_pattern(rank_pattern: dict[str, list[bool]]) -> dict[str, int]:
    """Module path -> rank from AdaLoRA's `rank_pattern` (keys `<module>.lora_E[.<adapter>]`)."""
    ranks = {}
    for key, kept in rank_pattern.items():
        module, marker, _ = key.partition(".lora_E")
        if not marker:
            raise ValueError(f"rank_pattern key {key!r} does not name a lora_E parameter")
        ranks[module] = int(sum(bool(k) for k in kept))
    return ranks


def default_target_modules(model: nn.Module) -> list[str]:
    """The attention and feed-forward projections of the model type (gated or plain T5 FFN)."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type in ("t5", "mt5"):
        ffn = ["wi_0", "wi_1"] if config.is_gated_act else ["wi"]
        return ["q", "k", "v", "o", *ffn, "wo"]
    if model_type in _DEFAULT_TARGETS:
        return list(_DEFAULT_TARGETS[model_type])
    known = ", ".join(["t5", "mt5", *_DEFAULT_TARGETS])
    raise ValueError(
        f"no default target modules for model type {model_type!r} (known: {known}); set target_modules"
    )


def check_target_modules(model: nn.Module, targets: list[str]) -> None:
    """Fail on a target that adapts nothing: PEFT skips a name that matches no linear layer silently."""
    linear_names = {
        name: name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, (nn.Linear, Conv1D))
    }
    available = sorted(set(linear_names.values()))
    for target in targets:
        if not any(name == target or name.endswith(f".{target}") for name in linear_names):
            raise ValueError(
                f"target module {target!r} matches no linear layer of {type(model).__name__}; "
                f"its linear layers are named: {', '.join(available)}"
            )


def _adalora_tuner(model: nn.Module) -> AdaLoraModel | None:
    tuner = getattr(model, "base_model", None)
    return tuner if isinstance(model, PeftModel) and isinstance(tuner, AdaLoraModel) else None


def _require_gradients(tuner: AdaLoraModel, global_step: int) -> None:
    adapter = tuner.trainable_adapter_name
    for name, param in tuner.model.named_parameters():
        if "lora_" in name and adapter in name and param.grad is None:
            raise RuntimeError(
                f"step {global_step}: {name} has no gradient; call after_optimizer_step after backward() and "
                f"optimizer.step() but before optimizer.zero_grad(), and make every adapted module part of the loss"
            )


def _task_type(model: nn.Module) -> TaskType | None:
    config = getattr(model, "config", None)
    if config is None:
        return None
    return TaskType.SEQ_2_SEQ_LM if getattr(config, "is_encoder_decoder", False) else TaskType.CAUSAL_LM


def _as_steps(value: float, total_steps: int) -> int:
    return int(round(value * total_steps)) if value < 1 else int(value)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)
