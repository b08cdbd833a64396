"""Time the standard MultiWOZ evaluator on the 1,000 test dialogues.

    python scripts/bench_evaluate.py [--data-dir ../shared/data] [--systems ubar augpt ...] [--cli-runs 3]

Three figures:
* the command line, `python -m todrl.evaluate --predictions F` in a fresh
  process (interpreter start, imports and JSON reading included): cold (an
  empty cache: the split is parsed and the references prepared), warm (the
  prepared references read from the cache) and with --no-cache, side by side;
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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz
from todrl.evaluate.multiwoz import StandardEvaluator
from todrl.evaluate.normalization import normalize_response
from todrl.evaluate.predictions import dump_predictions
from todrl.evaluate.published import PUBLISHED, load_published_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TODRL_DATA", "../shared/data")))
    parser.add_argument("--systems", nargs="*", default=list(PUBLISHED))
    parser.add_argument("--cli-runs", type=int, default=3, help="warm and --no-cache command lines timed (median)")
    args = parser.parse_args()
    archive = args.data_dir / "mwzeval-predictions" / "predictions.zip"
    command_line(args.data_dir / "multiwoz21", load_published_predictions(archive, args.systems[0]), args.cli_runs)

    started = time.perf_counter()
    dialogues = load_multiwoz(args.data_dir / "multiwoz21", "test")
    db = MultiWozDB(args.data_dir / "multiwoz21" / "db")
    read = time.perf_counter()
    prepared = StandardEvaluator(dialogues, db)
    ready = time.perf_counter()
    print(f"cold start: read split + database {read - started:.2f} s, prepare evaluator {ready - read:.2f} s")

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


def command_line(data_dir: Path, predictions, runs: int) -> None:
    """Wall time of the evaluate command in fresh processes sharing one new cache folder."""
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "predictions.json"
        dump_predictions(predictions, file)
        env = {**os.environ, "TODRL_CACHE": str(Path(folder) / "cache")}

        def timed(*extra: str) -> float:
            start = time.perf_counter()
            command = [sys.executable, "-m", "todrl.evaluate", "--predictions", str(file), "--data-dir", str(data_dir)]
            subprocess.run([*command, *extra], env=env, check=True, capture_output=True)
            return time.perf_counter() - start

        cold = timed()
        warm = statistics.median(timed() for _ in range(runs))
        uncached = statistics.median(timed("--no-cache") for _ in range(runs))
    print(f"command line: cold {cold:.2f} s, warm {warm:.2f} s, --no-cache {uncached:.2f} s "
          f"(warm/no-cache {warm / uncached:.2f}x; medians of {runs})")


if __name__ == "__main__":
    main()
