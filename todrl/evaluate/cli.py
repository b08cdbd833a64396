"""``python -m todrl.evaluate``: score a predictions file, or generate one from a checkpoint and score it.

    python -m todrl.evaluate --predictions outputs/preds.json                 # MultiWOZ 2.1 test, standard
    python -m todrl.evaluate --predictions preds.json --evaluator legacy --db-state generated
    python -m todrl.evaluate --checkpoint runs/sft --dataset incar --json

What is reported depends on the corpus: MultiWOZ gives Inform, Success,
BLEU, Combined and lexical richness (plus JGA when the file has states),
In-Car gives Match, SuccF1, BLEU and Combined (``--incar-metric``: LABES's
definition by default, GALAXY's, or todrl's own), SGD gives the official
(google-research ``schema_guided_dst``) per-frame JGA for all, seen and unseen
services, average goal accuracy, per-service JGA and its volatility Acc(VAS),
with todrl's strict per-turn numbers under ``sgd_strict``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from todrl.config import parse_args_with_config
from todrl.data import DATASETS, default_data_dir, load_dialogues, span_vocabulary
from todrl.data.errors import DataError
from todrl.data.records import Dialogue
from todrl.evaluate.corpus import REPORTED, CorpusScorer, ScoringOptions
from todrl.evaluate.incar_published import DESCRIPTIONS as INCAR_DESCRIPTIONS
from todrl.evaluate.incar_published import METRICS as INCAR_METRICS
from todrl.evaluate.legacy import VARIANTS as LEGACY_VARIANTS
from todrl.evaluate.predictions import Predictions, dump_predictions, load_predictions
from todrl.evaluate.sgd import FUZZY_MATCHERS
from todrl.evaluate.sgd_format import write_prediction_dir

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.evaluate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--predictions", type=Path, help="predictions file in the standard format")
    source.add_argument("--checkpoint", type=Path, help="model directory: generate the split, then score it")
    parser.add_argument("--dataset", choices=DATASETS, default="multiwoz21", help="corpus whose split is scored")
    parser.add_argument("--data-dir", type=Path, help="corpus folder; none = $TODRL_DATA/<corpus>, else ../shared/data/<corpus>")
    parser.add_argument("--split", default="test", help="split the predictions are for")
    parser.add_argument("--evaluator", choices=("standard", "legacy"), default="standard", help="MultiWOZ only")
    parser.add_argument(
        "--incar-metric", choices=INCAR_METRICS, default="labes",
        help="In-Car: LABES's metric.py (what published tables use), GALAXY's eval.py (fuzzy Match), or todrl's own",
    )
    parser.add_argument(
        "--db-state", choices=("gold", "generated"), default="gold",
        help="legacy evaluator: belief state for DB queries (UBAR's default: gold; PPTOD reports generated)",
    )
    parser.add_argument(
        "--legacy-variant", choices=LEGACY_VARIANTS, default="ubar",
        help="legacy evaluator: UBAR/PPTOD's eval.py, or MTTOD's (skips the first turn, no turn-domain check)",
    )
    parser.add_argument("--output", type=Path, help="checkpoint mode: where to write predictions")
    parser.add_argument(
        "--sgd-prediction-dir", type=Path,
        help="SGD: also write the predicted states as dialogues_NNN.json files here, the --prediction_dir of "
             "google-research's schema_guided_dst/evaluate.py",
    )
    parser.add_argument(
        "--sgd-fuzzy", choices=FUZZY_MATCHERS, default="difflib",
        help="SGD: fuzzywuzzy's matcher to imitate: difflib (as the official requirements.txt installs it) "
             "or levenshtein (with python-Levenshtein)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="checkpoint mode: turns decoded together")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="checkpoint mode: greedy decoding length cap")
    parser.add_argument("--limit", type=int, help="checkpoint mode: only the first N dialogues (smoke tests)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--no-cache", action="store_true",
        help="prepare the references from the corpus files instead of the cache keyed by their digests "
             "($TODRL_CACHE, default ~/.cache/todrl)",
    )
    return parse_args_with_config(parser, argv)


def corpus_scorer(args: argparse.Namespace, dialogues: Sequence[Dialogue] | None = None) -> CorpusScorer:
    """The scorer of `dialogues`, or of the whole split from the cache (unless --no-cache)."""
    names = [("legacy" if name == "standard" and args.evaluator == "legacy" else name) for name in REPORTED[args.dataset]]
    options = ScoringOptions(db_state=args.db_state, legacy_variant=args.legacy_variant, incar_metric=args.incar_metric,
                             sgd_fuzzy=args.sgd_fuzzy)
    if dialogues is None and not args.no_cache:
        return CorpusScorer.cached(args.dataset, args.data_dir, args.split, names, options)
    if dialogues is None:
        dialogues = load_dialogues(args.dataset, args.data_dir, args.split)
    return CorpusScorer(args.dataset, dialogues, args.data_dir, args.split, names, options)


def score(args: argparse.Namespace, scorer: CorpusScorer, predictions: Predictions, source: Path) -> dict[str, Any]:
    result: dict[str, Any] = {"dataset": args.dataset, "split": args.split, "predictions": str(source),
                              **scorer.score(predictions, source)}
    for warning in result.get("standard", {}).get("warnings", []):
        print(f"warning: {warning}", file=sys.stderr)
    if args.dataset == "sgd" and args.sgd_prediction_dir is not None:
        evaluator = scorer.evaluator("sgd")
        written = write_prediction_dir(evaluator.official_dialogues(predictions, source), evaluator.references,
                                       args.sgd_prediction_dir)
        print(f"wrote {len(written)} SGD prediction files to {args.sgd_prediction_dir}", file=sys.stderr)
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
            f"(legacy evaluator, {r['variant']}'s eval.py, {r['db_state']} DB state)"
        )
    if "incar" in result:
        r = result["incar"]
        match = "n/a (no states)" if r["match"] is None else f"{r['match']:.1f}"
        combined = "n/a" if r["combined"] is None else f"{r['combined']:.2f}"
        scope = "" if r["dialogues"] is None else f"; {r['dialogues']} dialogues scored"
        scope += "" if r["match_dialogues"] is None else f", {r['match_dialogues']} of them with a gold constraint"
        lines.append(f"Match {match}  SuccF1 {r['success_f1']:.1f}  BLEU {r['bleu']:.2f}  Combined {combined}  "
                     f"({INCAR_DESCRIPTIONS[r['definition']]}{scope})")
    if "dst" in result and result["dataset"] == "multiwoz21":
        r = result["dst"]
        lines.append(
            f"JGA {r['jga']:.1f}  slot P/R/F1 {r['slot_precision']:.1f}/{r['slot_recall']:.1f}/{r['slot_f1']:.1f}  "
            f"(standard: mwzeval, fuzzy values, gold dontcare dropped)  exact JGA {r['jga_exact']:.1f} (TRADE-style)  "
            f"({r['turns']} turns)"
        )
    elif "dst" in result:
        r = result["dst"]
        lines.append(f"JGA {r['joint_goal_accuracy']:.1f}  slot accuracy {r['slot_accuracy']:.1f}  ({r['turns']} turns)")
    if "sgd" in result:
        lines += sgd_summary(result["sgd"], result["sgd_strict"])
    return "\n".join(lines)


def sgd_summary(official: dict[str, Any], strict: dict[str, Any]) -> list[str]:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1f}"

    overall = official["all"]
    return [
        f"JGA {pct(overall['joint_goal_accuracy'])} (seen {pct(official['seen']['joint_goal_accuracy'])}, unseen "
        f"{pct(official['unseen']['joint_goal_accuracy'])})  AGA {pct(overall['average_goal_accuracy'])}  "
        f"Acc(VAS) {pct(official['volatility'])} over {len(official['per_service'])} services  "
        f"(official schema_guided_dst, {overall['frames']} frames, {official['matcher']} fuzzy matching)",
        f"strict JGA {pct(strict['joint_goal_accuracy'])}  slot accuracy {pct(strict['slot_accuracy'])}  "
        f"Acc(VAS) {pct(strict['volatility'])}  (todrl: per turn, exact after normalization, {strict['turns']} turns)",
    ]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir(args.dataset)
    try:
        if args.checkpoint is not None:
            from todrl.evaluate.generate import predict_checkpoint  # torch and transformers: only to generate

            dialogues = load_dialogues(args.dataset, args.data_dir, args.split)[: args.limit or None]
            predictions = predict_checkpoint(args.checkpoint, dialogues, span_vocabulary(args.dataset, args.data_dir),
                                             progress=True, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
            source = args.output or args.checkpoint / f"predictions_{args.dataset}_{args.split}.json"
            dump_predictions(predictions, source)
            print(f"wrote {source}", file=sys.stderr)
            result = score(args, corpus_scorer(args, dialogues), predictions, source)
        else:
            predictions, source = load_predictions(args.predictions), args.predictions
            result = score(args, corpus_scorer(args), predictions, source)
    except (DataError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0
