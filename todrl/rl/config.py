"""The settings of an RL run (`python -m todrl.rl`): one dataclass, a YAML file, flags."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar, Literal

from rewards import RewardConfig

from todrl.adapters import AdapterConfig
from todrl.config import check_choices, check_ranges
from todrl.data.splits import DataConfig
from todrl.format import FormatConfig
from todrl.models import check_quantize

DEFAULT_SFT = "runs/sft/default"
"""Where `python -m todrl.sft` writes by default, and so where RL starts by default."""


@dataclass
class RLConfig(DataConfig):
    """PPO/NLPO fine-tuning of an SFT policy with token-level TOD rewards and an adaptive KL penalty."""

    model: str = DEFAULT_SFT
    """SFT run directory (its best/ checkpoint, else last/), a checkpoint directory, or a hub name."""
    max_contexts: int = 0
    """Use only the first N training turns as episodes (0 = all)."""
    eval_dialogues: int = 8
    """Dev dialogues generated greedily and scored at each evaluation (0 = all)."""
    output_dir: str = "runs/rl/default"
    """Run directory: config.yaml, TensorBoard logs, summary.json and the best/ and last/ checkpoints."""

    algo: Literal["ppo", "nlpo"] = "nlpo"
    """ppo | nlpo (PPO sampling within the top-p set of a periodically re-synced mask policy)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """The task reward (`--reward tod|understanding|generation|none`) and its settings (`--reward.alpha`,
    `--reward.offer-slots name,id,reference`, ...): see rewards.RewardConfig."""
    reward_mode: Literal["delta", "cumulative"] = "delta"
    """delta: each token earns the change of the prefix reward (sums to the final reward); cumulative: the prefix reward."""
    kl_coef: float = 0.01
    """β_0 of the KL penalty (Eq. 5; not the β of Eq. 3, which is reward.beta); seed 004 uses 0.01."""
    kl_target: float | None = 1.0
    """Target KL per episode (nats, summed over tokens) of the adaptive beta (Eq. 6-7); None keeps beta fixed."""
    kl_rate: float = 0.2
    """K_beta of Eq. 7."""

    episodes: int = 512
    """Episodes (dataset turns) to roll out in total, over all processes."""
    batch_size: int = 8
    """Episodes per iteration and process."""
    minibatch_size: int = 4
    """Episodes per gradient step within an iteration's batch."""
    ppo_epochs: int = 5
    """PPO passes over each batch of episodes."""
    lr: float = 3e-4
    """AdamW learning rate, constant over the run."""
    gamma: float = 0.99
    """Discount of future token rewards in the returns and GAE."""
    lam: float = 0.95
    """GAE's lambda: 0 = one-step TD advantages, 1 = Monte Carlo returns."""
    clip_range: float = 0.2
    """PPO's clip of the probability ratio to [1 - clip_range, 1 + clip_range]."""
    clip_range_vf: float | None = 0.2
    """Clip of the value update around the rollout's values; None = plain squared error."""
    vf_coef: float = 0.5
    """Weight of the value loss in the PPO loss."""
    ent_coef: float = 0.0
    """Weight of the entropy bonus in the PPO loss (0 = entropy is only logged)."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    norm_adv: bool = True
    """Whiten advantages over each batch's real tokens."""
    target_kl: float | None = None
    """Stop an iteration's PPO epochs once the approximate KL to the rollout policy exceeds this (None = never)."""
    top_k: int = 50
    """Sampling keeps the k most likely tokens (0 = all)."""
    top_p: float = 0.9
    """NLPO: the mask policy's top-p set that the policy may sample from."""
    mask_sync_every: int = 5
    """NLPO: copy the current policy into the mask policy every N iterations."""
    max_source_length: int = 256
    """Context tokens kept, cut from the left so the current user turn survives."""
    max_new_tokens: int = 160
    """Length cap of sampled and greedy generations, and of the gold targets the SFT term scores."""
    sft_coef: float = 0.0
    """Weight of the SFT loss (cross-entropy of the episodes' gold targets) added to the PPO loss, as in
    InstructGPT's PPO-ptx. The KL penalty holds the policy near SFT along its own samples; this term holds the
    likelihood of the gold turns that SFT was fitted to, which any step away from the SFT optimum lowers."""
    value_model: Literal["head", "separate"] = "head"
    """head: a linear critic on the policy's hidden states; separate: a second model (another copy of the weights)."""
    format: FormatConfig = field(default_factory=FormatConfig)
    """Input/target format, the SFT policy's own: e2e | instruct (each sub-task's span earns its own reward: Ru for
    the state, Rg for the act and the reply, under --reward tod)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Dtype of the policy's weights and activations (adapters and the value head stay float32; log-probs,
    ratios, KL and advantages are computed in float32); fp16 is refused for T5."""
    gradient_checkpointing: bool = False
    """Recompute activations in the PPO updates' backward pass: less memory, about one more forward pass of time."""
    prepack: bool = False
    """CPU, fp32: decode steps read oneDNN-packed copies of the frozen weights (1.23x faster rollouts than 1.09x at
    Flan-T5-base's shape, scripts/bench_rollout.py) for about half the policy's weight bytes again in memory."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """Adapter runs: the SFT policy quantized by bitsandbytes under the adapter (4bit: QLoRA's NF4); the KL
    reference is that same quantized base with the adapter off."""
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(type="lora"))
    """Trainable parameters: lora | adalora | sucg (the reference and mask policy then cost no model copy) or full."""
    eval_every: int = 10
    """Evaluate (and save best/) every N iterations; 0 = only at the end."""
    save_every: int = 10
    """Save last/ every N iterations (and at the end)."""
    seed: int = 42
    """Training seed: adapter and value-head initialization, episode order and sampling."""
    resume: bool = False
    """Continue from output_dir/last, with the settings the run was started with (a longer run and other
    evaluation or saving intervals aside)."""
    overwrite: bool = False
    """Replace the run already in output_dir (its checkpoints, logs and summary); without it a fresh run refuses."""

    RANGES: ClassVar[dict[str, str]] = {
        **DataConfig.RANGES, "max_contexts": "[0, inf)", "eval_dialogues": "[0, inf)", "kl_coef": "[0, inf)",
        "kl_target": "(0, inf)", "kl_rate": "[0, inf)", "episodes": "[1, inf)", "batch_size": "[1, inf)",
        "minibatch_size": "[1, inf)", "ppo_epochs": "[1, inf)", "lr": "(0, 1]", "gamma": "[0, 1]", "lam": "[0, 1]",
        "clip_range": "(0, 1)", "clip_range_vf": "(0, inf)", "vf_coef": "[0, inf)", "ent_coef": "[0, inf)",
        "max_grad_norm": "(0, inf)", "target_kl": "(0, inf)", "top_k": "[0, inf)", "top_p": "(0, 1]",
        "mask_sync_every": "[1, inf)", "max_source_length": "[1, inf)", "max_new_tokens": "[1, inf)",
        "sft_coef": "[0, inf)", "eval_every": "[0, inf)", "save_every": "[1, inf)", "seed": "[0, 4294967295]",
    }  # fmt: skip

    def __post_init__(self) -> None:
        if isinstance(self.reward, str):  # RLConfig(reward="none"), as on the command line
            self.reward = RewardConfig(type=self.reward)
        check_choices(self)
        check_ranges(self)
        check_quantize(self.quantize, self.adapter.type)
        if self.minibatch_size > self.batch_size:
            raise ValueError(f"minibatch_size ({self.minibatch_size}) must not exceed batch_size ({self.batch_size})")
        if self.target_kl is not None and self.adapter.type in ("adalora", "sucg"):
            raise ValueError(
                "target_kl (early stop of the PPO epochs) makes the number of optimizer steps unknown in advance, "
                f"but {self.adapter.type}'s rank schedule is laid out over it; use adapter lora or full, or target_kl None"
            )

    @property
    def minibatches(self) -> int:
        return math.ceil(self.batch_size / self.minibatch_size)
