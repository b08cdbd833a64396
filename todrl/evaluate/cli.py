"""``python -m todrl.evaluate``: score a predictions file, or generate one from a checkpoint and score it.

    python -m todrl.evaluate --predictions outputs/preds.json                 # MultiWOZ 2.1 test, standard
    python -m todrl.evaluate --predictions preds.json --evaluator legacy --db-state generated
    python -m todrl.evaluate --checkpoint runs/sft --dataset incar --json

What is reported depends on the corpus: MultiWOZ gives Inform, Success,
BLEU, Combined and lexical richness (plus JGA when the file has states),
In-Car gives Match, SuccF1, BLEU and Combined, SGD gives JGA, slot accuracy,
per-service JGA and its volatility.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from todrl.data import DATASETS, default_data_dir, load_dialogues
from todrl.data.db import MultiWozDB
from todrl.data.errors import DataError
from todrl.data.records import Dialogue
from todrl.evaluate.dst import DstEvaluator, multiwoz_spelling, text_spelling
from todrl.evaluate.incar import InCarEvaluator
from todrl.evaluate.legacy import LegacyEvaluator
from todrl.evaluate.multiwoz import StandardEvaluator
from todrl.evaluate.predictions import Predictions, dump_predictions, load_predictions

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.evaluate", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="predictions file in the standard format")
    source.add_argument("--checkpoint", type=Path, help="model directory: generate the split, then score it")
    parser.add_argument("--dataset", choices=DATASETS, default="multiwoz21")
    parser.add_argument("--data-dir", type=Path, help="corpus folder (default: $TODRL_DATA/<corpus> or ../shared/data/<corpus>)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--evaluator", choices=("standard", "legacy"), default="standard", help="MultiWOZ only")
    parser.add_argument("--db-state", choices=("gold", "generated"), default="gold", help="legacy evaluator: state for DB queries")
    parser.add_argument(
        "--inverted-train-times", action="store_true", help="legacy evaluator: filter trains as UBAR/DAMD/MTTOD do"
    )
    parser.add_argument("--output", type=Path, help="checkpoint mode: where to write predictions")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--limit", type=int, help="checkpoint mode: only the first N dialogues (smoke tests)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    return parser.parse_args(argv)


def generate_predictions(checkpoint: Path, dialogues: Sequence[Dialogue], dataset: str, batch_size: int, max_new_tokens: int) -> Predictions:
    from todrl.evaluate.generate import predict_dialogues
    from todrl.models import load_policy

    model, tokenizer = load_policy(checkpoint)
    predictions, _ = predict_dialogues(model, tokenizer, dialogues, dataset, progress=True, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens)
    return predictions


def score(args: argparse.Namespace, dialogues: Sequence[Dialogue], predictions: Predictions, source: Path) -> dict[str, Any]:
    has_states = all(t.state is not None for turns in predictions.values() for t in turns)
    if args.dataset == "sgd" and not has_states:
        raise ValueError(f"{source}: SGD is scored on belief states, and some predicted turns have no 'state'")
    result: dict[str, Any] = {"dataset": args.dataset, "split": args.split, "predictions": str(source)}
    if args.dataset == "multiwoz21":
        db = MultiWozDB(args.data_dir / "db")
        if args.evaluator == "legacy":
            legacy = LegacyEvaluator(dialogues, db, args.inverted_train_times)
            result["legacy"] = legacy.evaluate(predictions, source, db_state=args.db_state).as_dict()
        else:
            standard = StandardEvaluator(dialogues, db).evaluate(predictions, source)
            result["standard"] = standard.as_dict()
            for warning in standard.warnings:
                print(f"warning: {warning}", file=sys.stderr)
    elif args.dataset == "incar":
        result["incar"] = InCarEvaluator(dialogues).evaluate(predictions, source).as_dict()
    if has_states:
        spelling = multiwoz_spelling if args.dataset == "multiwoz21" else text_spelling
        result["dst"] = DstEvaluator(dialogues, spelling).evaluate(predictions, source).as_dict()
    return result


def summary(result: dict[str, Any]) -> str:
    """A few human-readable lines; --json gives everything."""
    lines = [f"{result['dataset']} {result['split']}: {result['predictions']}"]
    if "standard" in result:
        r = result["standard"]
        lines.append(
            f"Inform {r['inform'].get('total', 0):.1f}  Success {r['success'].get('total', 0):.1f}  "
            f"BLEU {r['bleu']:.2f}  Combined {r['combined']:.2f}  (standard evaluator)"
        )
        rich = r["richness"]
        lines.append(
            f"avg length {rich['avg_length']:.2f}  entropy {rich['entropy']:.2f}  cond. entropy {rich['cond_entropy']:.2f}  "
            f"MSTTR {rich['msttr']:.3f}  distinct 1/2/3-grams {rich['num_unigrams']}/{rich['num_bigrams']}/{rich['num_trigrams']}"
        )
    if "legacy" in result:
        r = result["legacy"]
        lines.append(
            f"Inform {r['inform']:.1f}  Success {r['success']:.1f}  BLEU {r['bleu']:.2f}  Combined {r['combined']:.2f}  "
            f"(legacy evaluator, {r['db_state']} DB state)"
        )
    if "incar" in result:
        r = result["incar"]
        match = "n/a (no states)" if r["match"] is None else f"{r['match']:.1f}"
        combined = "n/a" if r["combined"] is None else f"{r['combined']:.2f}"
        lines.append(f"Match {match}  SuccF1 {r['success_f1']:.1f}  BLEU {r['bleu']:.2f}  Combined {combined}")
    if "dst" in result:
        r = result["dst"]
        line = f"JGA {r['joint_goal_accuracy']:.1f}  slot accuracy {r['slot_accuracy']:.1f}  ({r['turns']} turns)"
        if r["volatility"] is not None and result["dataset"] == "sgd":
            line += f"  per-service volatility (VAS) {r['volatility']:.1f} over {len(r['per_service'])} services"
        lines.append(line)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir(args.dataset)
    try:
        predictions = load_predictions(args.predictions) if args.predictions is not None else None
        dialogues = load_dialogues(args.dataset, args.data_dir, args.split)
        if args.checkpoint is not None:
            dialogues = dialogues[: args.limit] if args.limit else dialogues
            predictions = generate_predictions(args.checkpoint, dialogues, args.dataset, args.batch_size, args.max_new_tokens)
            source = args.output or args.checkpoint / f"predictions_{args.dataset}_{args.split}.json"
            dump_predictions(predictions, source)
            print(f"wrote {source}", file=sys.stderr)
        else:
            source = args.predictions
        result = score(args, dialogues, predictions, source)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0
