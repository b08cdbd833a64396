"""Score the 16 published prediction files with the legacy (UBAR/PPTOD) evaluator, both DB states.

    python scripts/legacy_published.py [--data-dir ../shared/data] [--variant ubar|mttod]   # a Markdown table

The generated-state column needs the file's own states (10 systems have
them); the two scores published with UBAR's evaluator are shown beside ours
(for ``--variant ubar``).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from todrl.evaluate.legacy import VARIANTS, LegacyEvaluator, LegacyResult
from todrl.evaluate.published import LEGACY_PUBLISHED, PUBLISHED, load_published_predictions


def cell(result: LegacyResult | None, system: str, db_state: str) -> str:
    if result is None:
        return "n/a (no states)"
    text = f"{result.inform:.1f} / {result.success:.1f} / {result.bleu:.2f}"
    published = LEGACY_PUBLISHED.get((system, db_state))
    if published is not None and result.variant == "ubar":  # both were published with UBAR's code
        text += f" (published {published.inform} / {published.success} / {published.bleu})"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("TODRL_DATA", "../shared/data")))
    parser.add_argument("--variant", choices=VARIANTS, default="ubar")
    args = parser.parse_args()
    evaluator = LegacyEvaluator.from_data_dir(args.data_dir / "multiwoz21", "test", args.variant)
    archive = args.data_dir / "mwzeval-predictions" / "predictions.zip"
    print(f"Legacy evaluator ({args.variant}), Inform / Success / BLEU\n")
    print("| system | gold DB state | generated DB state |")
    print("|---|---|---|")
    started = time.perf_counter()
    for system, published in PUBLISHED.items():
        predictions = load_published_predictions(archive, system)
        gold = evaluator.evaluate(predictions, system, db_state="gold")
        generated = evaluator.evaluate(predictions, system, db_state="generated") if published.own_states else None
        print(f"| {system} | {cell(gold, system, 'gold')} | {cell(generated, system, 'generated')} |")
    print(f"\n16 systems scored in {time.perf_counter() - started:.1f} s after loading.")


if __name__ == "__main__":
    main()
