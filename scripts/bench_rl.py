"""What an RL run costs: model weights held, and where an iteration's time goes.

    python -m todrl.sft                      # once: the embedded default SFT checkpoint (runs/sft/default)
    python scripts/bench_rl.py               # NLPO on the tiny preset with lora, sucg and full parameters

For each kind of trainable parameters, one short `todrl.rl` run reports:

- the bytes of model weights the run holds (policy, reference, NLPO mask
  policy, value function, counted once each) divided by the policy's own
  weight bytes.  RL4LMs holds four full models (4.0); with adapters the
  reference is the base with the adapter off and the mask policy a second
  adapter, so the target is at most 1.05.  Full fine-tuning needs a frozen
  reference copy and a frozen mask copy (about 3).
- the split of an iteration's wall time between generation, task reward,
  reference log-probs, values + advantages and the PPO update.  Target:
  everything but generation and the update under 10%.
- on CUDA, the peak GPU memory of the run.

The tiny preset has 1M weights, so an adapter (and its NLPO snapshot) is a
large share of it.  The same accounting is also done, without training, on a
model of Flan-T5 base's shape (seed 004's backbone; weights left
uninitialized, nothing downloaded).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

from transformers import T5Config, T5ForConditionalGeneration

from todrl.adapters import AdapterConfig, apply_adapter
from todrl.rl.build import assemble
from todrl.rl.config import RLConfig
from todrl.rl.trainer import train

PHASES = ("generation", "reward", "reference", "values", "advantages", "update")


def bench(model: str, adapter: str, algo: str, episodes: int, out: Path) -> dict:
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    cfg = RLConfig(model=model, output_dir=str(out), algo=algo, episodes=episodes, adapter=AdapterConfig(type=adapter),
                   eval_every=0, eval_dialogues=1, save_every=10**6)
    summary = train(cfg)
    seconds = summary["time_split"]
    total = sum(seconds[p] for p in PHASES if p in seconds)
    result = {
        "adapter": adapter,
        "algo": algo,
        "iterations": summary["iterations"],
        "held_weight_ratio": summary["held_weight_ratio"],
        "policy_weight_mib": summary["policy_weight_bytes"] / 2**20,
        "seconds_per_iteration": total / summary["iterations"],
        "share": {p: seconds.get(p, 0.0) / total for p in PHASES},
    }
    result["share_besides_generation_and_update"] = 1.0 - result["share"]["generation"] - result["share"]["update"]
    if torch.cuda.is_available():
        result["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return result


FLAN_T5_BASE = dict(vocab_size=32128, d_model=768, d_kv=64, d_ff=2048, num_layers=12, num_heads=12,
                    feed_forward_proj="gated-gelu", tie_word_embeddings=False)


def held_ratio_at_base_shape(adapter: str, algo: str) -> float:
    """Weights held / policy weights for a Flan-T5-base-shaped policy, from the same `assemble` a run uses."""
    with torch.device("meta"):
        model = T5ForConditionalGeneration(T5Config(**FLAN_T5_BASE))
    policy = apply_adapter(model.to_empty(device="cpu"), AdapterConfig(type=adapter), total_steps=100)
    models = assemble(policy, None, algo, torch.device("cpu"))
    return models.held_bytes / models.policy_bytes


def table(results: list[dict]) -> str:
    header = ["adapter", "weights held / policy", "at Flan-T5 base shape", "s / iteration", *PHASES, "all but gen+update"]
    if any("gpu_peak_mib" in r for r in results):
        header.append("GPU peak MiB")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = [r["adapter"], f"{r['held_weight_ratio']:.3f}", f"{r['held_weight_ratio_base_shape']:.3f}",
                 f"{r['seconds_per_iteration']:.2f}",
                 *(f"{100 * r['share'][p]:.1f}%" for p in PHASES), f"{100 * r['share_besides_generation_and_update']:.1f}%"]
        if "gpu_peak_mib" in r:
            cells.append(f"{r['gpu_peak_mib']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=RLConfig.model, help="SFT run or checkpoint to start from (default: %(default)s)")
    parser.add_argument("--adapters", nargs="+", default=["lora", "sucg", "full"], choices=["lora", "adalora", "sucg", "full"])
    parser.add_argument("--algo", default="nlpo", choices=["ppo", "nlpo"])
    parser.add_argument("--episodes", type=int, default=64, help="episodes per run (8 per iteration)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_rl_") as scratch:
        for adapter in args.adapters:
            try:
                results.append(bench(args.model, adapter, args.algo, args.episodes, Path(scratch) / adapter))
                results[-1]["held_weight_ratio_base_shape"] = held_ratio_at_base_shape(adapter, args.algo)
            except FileNotFoundError as error:
                print(f"bench_rl: {error}", file=sys.stderr)
                return 2
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        machine += f", {torch.cuda.get_device_name()}"
    print(f"\n{args.algo} on {args.model} ({machine})\n")
    print(table(results))
    print("\nRL4LMs keeps four full models (policy, value, reference, mask): 4.0 on the same scale.")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine, "model": args.model, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
