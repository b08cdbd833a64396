"""End-to-end or instruction format (seed 002's claim) on low-resource MultiWOZ 2.1, at this machine's scale.

    python scripts/bench_formats.py [--config configs/sft_tiny_multiwoz21.yaml] [--steps 600] [--test-dialogues 300]

The same tiny preset is trained from scratch in each format (`--format e2e|instruct`) on 10% and 100% of the
offline low-resource training dialogues (the learning benchmark's: MultiWOZ 2.1 val minus its dev slice), with the
same number of optimizer steps each (the instruction format has about three examples per turn, so equal steps are
equal compute, not equal epochs), one seed; each best/ checkpoint (dev loss) then generates the first
`--test-dialogues` test dialogues, scored by the standard evaluator (Inform, Success, BLEU, Combined) and its JGA.
Results land in `--output-dir` (results.json and a markdown table); a finished run is not trained again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import yaml

from todrl.config import from_dict
from todrl.data import load_dialogues, span_vocabulary
from todrl.evaluate.corpus import CorpusScorer, ScoringOptions, figures
from todrl.evaluate.generate import predict_checkpoint
from todrl.format import FormatConfig
from todrl.instruct import inference_format
from todrl.sft import SFTConfig, train

FORMATS = ("e2e", "instruct")
FRACTIONS = (0.1, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("configs/sft_tiny_multiwoz21.yaml"))
    parser.add_argument("--steps", type=int, default=600, help="optimizer steps of every run")
    parser.add_argument("--test-dialogues", type=int, default=300, help="first N test dialogues generated and scored")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/bench_formats"))
    args = parser.parse_args()
    base = from_dict(SFTConfig, yaml.safe_load(args.config.read_text()), str(args.config))
    test = load_dialogues(base.dataset, base.data_dir, "test")[: args.test_dialogues]
    vocabulary = span_vocabulary(base.dataset, base.data_dir)
    scorer = CorpusScorer(base.dataset, test, base.data_dir, "test", ("standard", "dst"), ScoringOptions(lexical=False))
    results = []
    for fraction in FRACTIONS:
        for kind in FORMATS:
            out = args.output_dir / f"{kind}_{int(fraction * 100)}"
            config = dataclasses.replace(base, format=FormatConfig(type=kind), train_fraction=fraction,
                                         max_steps=args.steps, eval_every=max(args.steps // 6, 1), output_dir=str(out),
                                         resume=(out / "last").is_dir())  # an interrupted run continues
            started = time.perf_counter()
            summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else train(config)
            trained = time.perf_counter() - started
            form = inference_format(kind, base.dataset, base.data_dir, vocabulary, test)
            started = time.perf_counter()
            predictions = predict_checkpoint(out / "best", test, vocabulary, progress=True, form=form, batch_size=64)
            scores = figures(scorer.score(predictions, out))
            results.append({"format": kind, "train_fraction": fraction, "train_examples": summary["train_examples"],
                            "best_dev_loss": summary["best_dev_loss"], "train_seconds": round(trained),
                            "generate_seconds": round(time.perf_counter() - started), **scores})
            print(json.dumps(results[-1]), flush=True)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "results.json").write_text(json.dumps(results, indent=2))
    table = ["| train share | format | examples | Inform | Success | BLEU | Combined | JGA |", "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['train_fraction']:.0%} | {r['format']} | {r['train_examples']} | {r['inform']:.1f} | "
              f"{r['success']:.1f} | {r['bleu']:.2f} | {r['combined']:.2f} | {r['jga']:.1f} |" for r in results]
    (args.output_dir / "results.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
