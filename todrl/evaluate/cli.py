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

Every result carries a ``coverage`` block: a file that leaves dialogues or
turns of the split out is scored on what it predicts (published files skip a
few dialogues), with a warning and a PARTIAL line, unless ``--strict``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from todrl.config import parse_args_with_config
from todrl.data import SCORED_DATASETS, default_data_dir, load_dialogues, span_vocabulary
from todrl.data.errors import DataError
from todrl.data.records import Dialogue
from todrl.format import TASKS
from todrl.evaluate.corpus import REPORTED, CorpusScorer, ScoringOptions
from todrl.evaluate.incar_published import DESCRIPTIONS as INCAR_DESCRIPTIONS
from todrl.evaluate.incar_published import METRICS as INCAR_METRICS
from todrl.evaluate.legacy import VARIANTS as LEGACY_VARIANTS
from todrl.evaluate.predictions import (
    MAX_RESPONSE_CHARS,
    PredictionError,
    Predictions,
    dump_predictions,
    load_predictions,
)
from todrl.evaluate.sgd import FUZZY_MATCHERS
from todrl.evaluate.sgd_format import write_prediction_dir

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.evaluate", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--predictions", type=Path,
        help=f"predictions file in the standard format (at most {MAX_RESPONSE_CHARS:,} characters per response or "
             "state value)",
    )
    source.add_argument("--checkpoint", type=Path, help="model directory: generate the split, then score it")
    parser.add_argument("--dataset", choices=SCORED_DATASETS, default="multiwoz21", help="corpus whose split is scored")
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
    parser.add_argument(
        "--output", type=Path,
        help="checkpoint mode: where to write predictions (none = CHECKPOINT/predictions_<dataset>_<split>.json); "
             "its folder must exist and be writable, which is checked before anything is generated",
    )
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
    parser.add_argument(
        "--format", choices=("e2e", "instruct"),
        help="checkpoint mode: the policy's input/target format; none = the one its run config names (else e2e)",
    )
    parser.add_argument(
        "--task", choices=TASKS,
        help="checkpoint mode: what the policy writes (e2e; dst: the state; dst-cot: its two stages, chained); "
             "none = the one its run config names (else e2e)",
    )
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                        help="checkpoint mode: dtype of the weights while generating (fp16 is refused for T5)")
    parser.add_argument("--batch-size", type=int, default=32, help="checkpoint mode: turns decoded together")
    parser.add_argument("--max-new-tokens", type=int, default=160, help="checkpoint mode: decoding length cap")
    parser.add_argument("--num-beams", type=int, default=1,
                        help="checkpoint mode: beam search over this many beams (1 = greedy, the default)")
    parser.add_argument("--limit", type=int, help="checkpoint mode: only the first N dialogues (smoke tests; scored "
                                                  "as a PARTIAL file)")
    parser.add_argument(
        "--strict", action="store_true",
        help="refuse a predictions file that leaves out dialogues or turns of the split (and --limit); by default "
             "such a file is scored on what it predicts (published files skip a few dialogues), with a warning, a "
             "PARTIAL line and the coverage block of the result saying so",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument(
        "--no-cache", action="store_true",
        help="prepare the references from the corpus files instead of the cache keyed by their digests "
             "($TODRL_CACHE, default ~/.cache/todrl)",
    )
    return parse_args_with_config(parser, argv)


def check_args(args: argparse.Namespace) -> None:
    """Refuse settings that would fail or mislead late, before any corpus is read or any turn generated."""
    for flag in ("limit", "batch_size", "max_new_tokens", "num_beams"):
        value = getattr(args, flag)
        if value is not None and value < 1:
            raise ValueError(f"--{flag.replace('_', '-')} must be at least 1, got {value}")
    if args.strict and args.limit is not None:
        raise ValueError("--strict refuses --limit, which generates part of the split")
    if args.checkpoint is not None:
        if not args.checkpoint.is_dir():
            raise ValueError(f"--checkpoint {args.checkpoint}: no such model directory")
        check_output(output_path(args))


def output_path(args: argparse.Namespace) -> Path:
    return args.output or args.checkpoint / f"predictions_{args.dataset}_{args.split}.json"


def check_output(path: Path) -> None:
    """The predictions file can be written: checked first, so that a typo costs no generation (and makes no folder)."""
    if path.is_dir():
        raise ValueError(f"--output {path}: is a directory; name the predictions file to write")
    if not path.parent.is_dir():
        raise ValueError(f"--output {path}: no folder {path.parent} to write it in")
    if not os.access(path.parent, os.W_OK):
        raise ValueError(f"--output {path}: its folder {path.parent} is not writable")


def corpus_scorer(args: argparse.Namespace, dialogues: Sequence[Dialogue] | None = None) -> CorpusScorer:
    """The scorer of the whole split: from the cache, or with --no-cache from `dialogues` (read when None)."""
    names = [("legacy" if name == "standard" and args.evaluator == "legacy" else name) for name in REPORTED[args.dataset]]
    options = ScoringOptions(db_state=args.db_state, legacy_variant=args.legacy_variant, incar_metric=args.incar_metric,
                             sgd_fuzzy=args.sgd_fuzzy)
    if not args.no_cache:
        return CorpusScorer.cached(args.dataset, args.data_dir, args.split, names, options)
    if dialogues is None:
        dialogues = load_dialogues(args.dataset, args.data_dir, args.split)
    return CorpusScorer(args.dataset, dialogues, args.data_dir, args.split, names, options)


def score(args: argparse.Namespace, scorer: CorpusScorer, predictions: Predictions, source: Path) -> dict[str, Any]:
    """The result of `predictions`, a file leaving part of the split out refused (--strict) or flagged first."""
    coverage = scorer.coverage(predictions, source).counts()
    if not coverage["complete"]:
        if args.strict:
            raise PredictionError(source, f"--strict: the file does not cover the split, {covered(coverage)}")
        print(f"warning: {source}: {partial_line(coverage)}", file=sys.stderr)
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


def partial_line(coverage: dict[str, Any]) -> str:
    """What the scores of a file that leaves part of the split out stand for (`Coverage.counts`)."""
    return f"PARTIAL: {covered(coverage)}: only the predicted turns are scored"


def covered(coverage: dict[str, Any]) -> str:
    return (f"{coverage['dialogues']} of {coverage['split_dialogues']} dialogues, {coverage['turns']} of "
            f"{coverage['split_turns']} turns predicted ({coverage['missing_dialogues']} dialogues missing, "
            f"{coverage['truncated_dialogues']} cut short)")


def summary(result: dict[str, Any]) -> str:
    """A few human-readable lines; --json gives everything."""
    lines = [f"{result['dataset']} {result['split']}: {result['predictions']}"]
    coverage = result.get("coverage")
    if coverage is not None and not coverage["complete"]:
        lines.append(partial_line(coverage))
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


def generate_predictions(args: argparse.Namespace) -> tuple[Predictions, Path, list[Dialogue]]:
    """Checkpoint mode: predict the split (its first --limit dialogues), write the file; also the whole split."""
    from todrl.evaluate.generate import predict_checkpoint  # torch and transformers: only to generate
    from todrl.instruct import checkpoint_format, checkpoint_task, inference_format
    from todrl.models import ModelLoadError

    dialogues = load_dialogues(args.dataset, args.data_dir, args.split)
    vocabulary = span_vocabulary(args.dataset, args.data_dir)
    form = inference_format(args.format or checkpoint_format(args.checkpoint), args.dataset, args.data_dir, vocabulary,
                            dialogues[: args.limit])
    task = args.task or checkpoint_task(args.checkpoint)
    if form is not None and task != "e2e":
        raise ValueError(f"the instruct format covers the e2e task, not {task!r}")
    try:
        predictions = predict_checkpoint(args.checkpoint, dialogues[: args.limit], vocabulary, progress=True, form=form,
                                         precision=args.precision, task=task, batch_size=args.batch_size,
                                         max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
    except ModelLoadError as error:
        raise ValueError(str(error)) from None
    source = output_path(args)
    dump_predictions(predictions, source)
    print(f"wrote {source}", file=sys.stderr)
    return predictions, source, dialogues


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.data_dir = args.data_dir or default_data_dir(args.dataset)
    try:
        check_args(args)
        if args.checkpoint is not None:
            predictions, source, dialogues = generate_predictions(args)
            result = score(args, corpus_scorer(args, dialogues), predictions, source)
        else:
            predictions, source = load_predictions(args.predictions), args.predictions
            result = score(args, corpus_scorer(args), predictions, source)
    except (DataError, ValueError) as error:
        print("error: " + " ".join(str(error).splitlines()), file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else summary(result))
    return 0
