"""todrl's PPO against TRL's GRPOTrainer: time per episode on the same tiny-Llama SFT checkpoint, in one process.

    python -m todrl.sft --model tiny-llama --output-dir runs/sft/tiny-llama   # once
    python scripts/bench_trl.py [--checkpoint runs/sft/tiny-llama/best] [--episodes 64]

Both sides start from the same checkpoint, train a rank-8 LoRA adapter (todrl's default target modules for the
model, alpha 16, dropout 0.05, lr 3e-4) on the embedded sample's training turns, 8 episodes per step, one
optimizer step per batch, with a KL term against the frozen base (the adapter switched off, no copy), without
gradient checkpointing, in float32, and sample up to `--max-new-tokens` tokens with top-k 50.  Per step:

* todrl (`todrl.rl.trainer.train`, PPO, one epoch, one minibatch of 8): samples 8 contexts once each keeping
  log-probs and hidden states, scores token-level TOD rewards, the reference's log-probs, value-head values,
  GAE, then one clipped-PPO step on policy and value losses.  Timed: the sum of the loop's phases.
* TRL (`GRPOTrainer`, beta 0.04): samples 4 contexts twice each (a group of 2, GRPO's smallest) with
  `generate`, scores them with `rewards.TODRewardFunction("tod")`, the reference's log-probs, group-normalized
  advantages, then one GRPO step.  Timed: from each step's start to its end (TrainerCallback).

Setup (model loading, adapter creation), evaluation and checkpoints are outside both timings.  The two runs
alternate `--repeats` times; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from accelerate.state import AcceleratorState
from transformers import TrainerCallback

from todrl.adapters import AdapterConfig, default_target_modules
from todrl.rl.build import contexts
from todrl.rl.config import RLConfig
from todrl.rl.trainer import train


def todrl_seconds(cfg: RLConfig) -> float:
    AcceleratorState._reset_state(reset_partial_state=True)
    summary = train(cfg)
    return sum(summary["time_split"].values())


class StepTimer(TrainerCallback):
    """Wall time spent inside training steps (generation, rewards, reference and update)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.start = 0.0

    def on_step_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.seconds += time.perf_counter() - self.start


def trl_seconds(cfg: RLConfig, episodes: int, out: Path) -> float:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import GRPOConfig, GRPOTrainer

    from rewards import TODRewardFunction
    from todrl.models import load_policy

    AcceleratorState._reset_state(reset_partial_state=True)
    model, tokenizer = load_policy(cfg.model)
    examples, _ = contexts(cfg)
    rows = [{"prompt": e.source, "belief_state": json.dumps(e.belief_state), "requested_slots": json.dumps(e.requested)}
            for e in examples[: episodes // 2]]
    args = GRPOConfig(
        output_dir=str(out), per_device_train_batch_size=cfg.batch_size, num_generations=2, max_steps=episodes // cfg.batch_size,
        max_completion_length=cfg.max_new_tokens, top_k=cfg.top_k, temperature=1.0, beta=0.04, learning_rate=cfg.lr,
        num_iterations=1, gradient_accumulation_steps=1, report_to=[], use_cpu=True, save_strategy="no", logging_steps=1,
        seed=cfg.seed, disable_tqdm=True, gradient_checkpointing=cfg.gradient_checkpointing,  # GRPOConfig's default is on
    )  # fmt: skip
    adapter = cfg.adapter
    peft_config = LoraConfig(r=adapter.r, lora_alpha=adapter.lora_alpha, lora_dropout=adapter.lora_dropout,
                             target_modules=default_target_modules(model), task_type="CAUSAL_LM")
    timer = StepTimer()
    trainer = GRPOTrainer(model=model, reward_funcs=[TODRewardFunction("tod")], args=args,
                          train_dataset=Dataset.from_list(rows), processing_class=tokenizer, peft_config=peft_config,
                          callbacks=[timer])
    trainer.train()
    return timer.seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/sft/tiny-llama/best")
    parser.add_argument("--episodes", type=int, default=64)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if not Path(args.checkpoint, "config.json").is_file():
        print(f"bench_trl: no checkpoint at {args.checkpoint} (python -m todrl.sft --model tiny-llama --output-dir "
              "runs/sft/tiny-llama writes one)", file=sys.stderr)
        return 2
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    seconds: dict[str, list[float]] = {"todrl PPO": [], "TRL GRPO": []}
    with tempfile.TemporaryDirectory(prefix="bench_trl_") as scratch:
        for repeat in range(args.repeats):
            cfg = RLConfig(model=args.checkpoint, output_dir=str(Path(scratch) / f"todrl{repeat}"), algo="ppo",
                           episodes=args.episodes, batch_size=8, minibatch_size=8, ppo_epochs=1,
                           adapter=AdapterConfig(type="lora", r=8), max_new_tokens=args.max_new_tokens, eval_every=0,
                           eval_dialogues=1, save_every=10**6)
            seconds["todrl PPO"].append(todrl_seconds(cfg))
            seconds["TRL GRPO"].append(trl_seconds(cfg, args.episodes, Path(scratch) / f"trl{repeat}"))
            print({name: [round(s, 2) for s in values] for name, values in seconds.items()}, flush=True)
    per_episode = {name: statistics.median(values) / args.episodes for name, values in seconds.items()}
    print(f"\n| side | s per episode ({args.episodes} episodes, median of {args.repeats}) |\n|---|---|")
    for name, value in per_episode.items():
        print(f"| {name} | {value:.4f} |")
    print(f"\ntodrl / TRL: {per_episode['todrl PPO'] / per_episode['TRL GRPO']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
