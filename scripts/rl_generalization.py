"""Does an RL run improve its greedy outputs where it trained, and where it did not?

Scores greedy generations of the run's starting policy (`base/`) and of its
final adapter (`last/`) with the run's own task reward, on the training
contexts the run sampled and on as many training contexts it never sampled.
A sampled reward that rises during training says little about greedy
decoding: this separates "the updates do not fit the sampled contexts" from
"they fit them but do not carry over".

    python scripts/rl_generalization.py runs/probe/multiwoz21
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

import torch
from rewards import sequence_rewards

from todrl.config import parse_config
from todrl.data import span_vocabulary
from todrl.generation import generate_texts
from todrl.models import load_policy
from todrl.rl.build import contexts, episode_indices
from todrl.rl.task_reward import gold_of, judged_by
from todrl.rl.config import RLConfig


def sampled_contexts(cfg: RLConfig, iterations: int, size: int, processes: int) -> set[int]:
    """Indices of the training contexts the run rolled out, over all processes."""
    return {i for it in range(iterations) for rank in range(processes)
            for i in episode_indices(it, size, cfg.batch_size, processes, rank, cfg.seed)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="RL output directory (with config.yaml, summary.json, base/ and last/)")
    parser.add_argument("--processes", type=int, default=1, help="processes the run was trained with")
    parser.add_argument("--batch-size", type=int, default=64, help="generation batch size")
    args = parser.parse_args(argv)
    for needed in ("config.yaml", "summary.json", "base", "last"):
        if not (args.run / needed).exists():
            sys.exit(f"rl_generalization: {args.run / needed} is missing; give the output directory of a finished RL run")
    torch.set_num_threads(1)
    cfg = parse_config(RLConfig, ["--config", str(args.run / "config.yaml")])
    iterations = json.loads((args.run / "summary.json").read_text())["iterations"]
    train, _ = contexts(cfg)
    vocabulary = span_vocabulary(cfg.dataset, cfg.data_dir)
    seen = sorted(sampled_contexts(cfg, iterations, len(train), args.processes))
    unseen = random.Random(cfg.seed).sample(sorted(set(range(len(train))) - set(seen)), min(len(seen), len(train) - len(seen)))
    scores = {}
    for checkpoint in ("base", "last"):
        policy, tokenizer = load_policy(args.run / checkpoint)
        for name, indices in (("sampled", seen), ("never sampled", unseen)):
            examples = [train[i] for i in indices]
            texts = generate_texts(policy.eval(), tokenizer, [e.source for e in examples], progress=True,
                                   max_source_length=cfg.max_source_length, max_new_tokens=cfg.max_new_tokens,
                                   batch_size=args.batch_size)
            golds = [gold_of(e, cfg.reward) for e in examples]
            rewards = sequence_rewards(texts, golds, judged_by(cfg.reward), vocabulary)
            scores[checkpoint, name] = sum(rewards) / len(rewards)
    reward = f"{judged_by(cfg.reward).type} reward" + (", symmetric penalty" if cfg.reward.symmetric else "")
    print(f"greedy {reward}, mean over contexts ({len(seen)} sampled, {len(unseen)} never sampled):")
    for name in ("sampled", "never sampled"):
        start, end = scores["base", name], scores["last", name]
        print(f"  {name:14s} start {start:.4f}  after RL {end:.4f}  change {end - start:+.4f}")


if __name__ == "__main__":
    main()
