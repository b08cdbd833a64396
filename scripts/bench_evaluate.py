"""Time the standard MultiWOZ evaluator on the 1,000 test dialogues.

    python scripts/bench_evaluate.py [--data-dir ../shared/data] [--systems ubar augpt ...]

Two figures:
* cold start: reading the test split and the database, then preparing the
  evaluator (reference responses normalized and counted for BLEU, goal venues
  looked up): paid once per process;
* scoring: one predictions file, all three metric groups (Inform/Success,
  BLEU, lexical richness), given that prepared gold data.  Each file is scored
  by a fresh copy of the prepared evaluator with the response cache emptied,
  so nothing learned from another file (or the same file) is reused.
The machine's load average is printed too: the figures are wall-clock time.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import time
from pathlib import Path

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz
from todrl.evaluate.multiwoz import StandardEvaluator
from todrl.evaluate.normalization import normalize_response
from todrl.evaluate.published import PUBLISHED, load_published_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TODRL_DATA", "../shared/data")))
    parser.add_argument("--systems", nargs="*", default=list(PUBLISHED))
    args = parser.parse_args()

    started = time.perf_counter()
    dialogues = load_multiwoz(args.data_dir / "multiwoz21", "test")
    db = MultiWozDB(args.data_dir / "multiwoz21" / "db")
    read = time.perf_counter()
    prepared = StandardEvaluator(dialogues, db)
    ready = time.perf_counter()
    print(f"cold start: read split + database {read - started:.2f} s, prepare evaluator {ready - read:.2f} s")

    archive = args.data_dir / "mwzeval-predictions" / "predictions.zip"
    timings = []
    for system in args.systems:
        predictions = load_published_predictions(archive, system)
        evaluator = copy.deepcopy(prepared)
        normalize_response.cache_clear()
        start = time.perf_counter()
        evaluator.evaluate(predictions, system)
        timings.append(time.perf_counter() - start)
        print(f"  {system:14s} {timings[-1]:.2f} s  ({sum(map(len, predictions.values()))} turns)")
    print(f"scoring one file (Inform/Success + BLEU + richness): median {statistics.median(timings):.2f} s, "
          f"max {max(timings):.2f} s over {len(timings)} files")  # fmt: skip
    print(f"load average while running: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
