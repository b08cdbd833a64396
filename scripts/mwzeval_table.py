"""Score the 16 published prediction files with todrl's standard evaluator, next to the published table.

    python scripts/mwzeval_table.py [--data-dir ../shared/data]   # prints a Markdown table

Published: Nekvinda & Dušek (2021), BLEU against MultiWOZ 2.2 references and,
for systems without states, Inform/Success with MultiWOZ 2.2 gold states.
Ours: MultiWOZ 2.1 references rebuilt from span_info and 2.1 gold states
(the only ones available offline).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from todrl.evaluate.multiwoz import StandardEvaluator
from todrl.evaluate.published import IRREPRODUCIBLE, PUBLISHED, load_published_predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TODRL_DATA", "../shared/data")))
    args = parser.parse_args()
    evaluator = StandardEvaluator.from_data_dir(args.data_dir / "multiwoz21", "test")
    archive = args.data_dir / "mwzeval-predictions" / "predictions.zip"
    print("| system | own states | BLEU ours / published | Inform ours / published | Success ours / published |"
          " within tolerance |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    started = time.perf_counter()
    for system, published in PUBLISHED.items():
        result = evaluator.evaluate(load_published_predictions(archive, system), system)
        inform, success = result.inform["total"], result.success["total"]
        tolerance = 0.1 if published.own_states else 0.5
        if system in IRREPRODUCIBLE:
            verdict = "n/a (reference implementation does not reproduce it either)"
        else:
            ok = abs(inform - published.inform) <= tolerance + 1e-9 and abs(success - published.success) <= tolerance + 1e-9
            verdict = ("yes" if ok and abs(result.bleu - published.bleu) <= 1.0 else "NO") + f" (±{tolerance})"
        print(
            f"| {system} | {'yes' if published.own_states else 'no'} | {result.bleu:.2f} / {published.bleu:.2f} "
            f"| {inform:.1f} / {published.inform:.1f} | {success:.1f} / {published.success:.1f} | {verdict} |"
        )
    print(f"\n16 systems scored in {time.perf_counter() - started:.1f} s after loading.")


if __name__ == "__main__":
    main()
