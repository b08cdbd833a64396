"""What a training step costs with SUCG against AdaLoRA, side by side on the same batches.

    OMP_NUM_THREADS=1 python scripts/bench_sucg.py [--shapes tiny flan-t5-base] [--steps 30] [--batch-size 8]

Each shape is built from its configuration with random weights, as `scripts/bench_scale.py` does (nothing is
downloaded). AdaLoRA and SUCG adapt two copies of it with the same seed and `AdapterConfig` defaults (deltaT,
repeats, tinit, tfinal) over `--steps` optimizer steps, on batches of the shipped MultiWOZ sample. The two are
interleaved step by step, in alternating order, so load from other jobs falls on both; a step is the loop's
forward, backward, optimizer step and `after_optimizer_step` (where SUCG's extra pass runs on its scoring steps).
"""

from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
from pathlib import Path

import torch
from bench_scale import SHAPES, build

from todrl.adapters import AdapterConfig, after_optimizer_step, apply_adapter
from todrl.batching import Collator, tokenize_examples
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.format import build_examples
from todrl.models import load_policy

METHODS = ("adalora", "sucg")


def time_shape(checkpoint: Path, args: argparse.Namespace) -> dict[str, float]:
    """Mean seconds per step of each method, the seconds of SUCG's scoring steps, and how many there were."""
    model, tokenizer = load_policy(checkpoint)
    rows = tokenize_examples(build_examples(load_multiwoz(SAMPLE_PATH, "train")), tokenizer, seq2seq=True,
                             max_source_length=args.source_tokens, max_target_length=args.target_tokens)
    collate = Collator(tokenizer.pad_token_id, True)
    overrides = {} if args.delta_t is None else {"delta_t": args.delta_t}
    runs = {}
    for method in METHODS:
        torch.manual_seed(0)
        policy = apply_adapter(copy.deepcopy(model), AdapterConfig(type=method, **overrides), total_steps=args.steps)
        policy.train()
        runs[method] = (policy, torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4))
    seconds = dict.fromkeys(METHODS, 0.0)
    scoring, scoring_seconds = 0, 0.0
    allocator = runs["sucg"][0].base_model.rankallocator
    for step in range(1, args.steps + 1):
        batch = collate([rows[(step * args.batch_size + i) % len(rows)] for i in range(args.batch_size)])
        for method in METHODS if step % 2 else reversed(METHODS):
            policy, optimizer = runs[method]
            start = time.perf_counter()
            policy(**batch).loss.backward()
            optimizer.step()
            after_optimizer_step(policy, step, lambda p=policy: p(**batch).loss)
            optimizer.zero_grad()
            elapsed = time.perf_counter() - start
            seconds[method] += elapsed
            if method == "sucg" and allocator.scores_at(step):
                scoring, scoring_seconds = scoring + 1, scoring_seconds + elapsed
        if step % 10 == 0:
            print(f"  step {step}: " + ", ".join(f"{m} {s / step:.3f} s/step" for m, s in seconds.items()), flush=True)
    return {**{m: s / args.steps for m, s in seconds.items()}, "scoring_steps": scoring,
            "scoring_step_s": scoring_seconds / max(scoring, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=["tiny", "flan-t5-base"], choices=SHAPES)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--source-tokens", type=int, default=32, help="longest input, in tokens")
    parser.add_argument("--target-tokens", type=int, default=16, help="longest target, in tokens")
    parser.add_argument("--delta-t", type=int, default=None, help="AdaLoRA's deltaT (default: AdapterConfig's)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {torch.get_num_threads()} threads, torch {torch.__version__}; {args.steps} steps, "
          f"batch {args.batch_size}, at most {args.source_tokens} + {args.target_tokens} tokens")
    print("| shape | AdaLoRA s/step | SUCG s/step | SUCG / AdaLoRA | SUCG scoring steps | s per scoring step |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for shape in args.shapes:
            result = time_shape(build(shape, Path(scratch)), args)
            print(f"| {shape} | {result['adalora']:.3f} | {result['sucg']:.3f} | {result['sucg'] / result['adalora']:.3f} "
                  f"| {result['scoring_steps']} | {result['scoring_step_s']:.3f} |", flush=True)


if __name__ == "__main__":
    main()
