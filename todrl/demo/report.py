"""``python -m todrl.demo --report ratings.sqlite``: per-checkpoint means of the human ratings with 95% intervals.

Appropriateness and fluency (1-5, per response) get mean ± 1.96 standard
errors (normal approximation; with few ratings read it as a rough guide);
success (per dialogue) gets the Wilson score interval, which stays inside
[0, 1] when every dialogue succeeded or failed.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from todrl.demo.store import ASPECTS, RatingStore

MEASURES = (*ASPECTS, "success")
Z = 1.96


@dataclass(frozen=True)
class Estimate:
    n: int
    mean: float
    low: float
    high: float


def mean_interval(values: list[float]) -> Estimate:
    n = len(values)
    mean = sum(values) / n
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = Z * spread / math.sqrt(n)
    return Estimate(n, mean, mean - half, mean + half)


def wilson_interval(values: list[float]) -> Estimate:
    n = len(values)
    p = sum(values) / n
    centre = (p + Z**2 / (2 * n)) / (1 + Z**2 / n)
    half = Z * math.sqrt(p * (1 - p) / n + Z**2 / (4 * n**2)) / (1 + Z**2 / n)
    return Estimate(n, p, centre - half, centre + half)


def summarize(path: str | Path) -> dict[str, dict[str, Estimate]]:
    """checkpoint -> measure -> estimate, for the measures that have ratings."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such ratings file")
    try:
        rows = RatingStore(path).ratings()
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path}: not a ratings file of todrl.demo ({error})") from error
    grouped: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for checkpoint, measure, value in rows:
        grouped[checkpoint][measure].append(value)
    return {
        checkpoint: {m: (wilson_interval if m == "success" else mean_interval)(v) for m, v in measures.items()}
        for checkpoint, measures in sorted(grouped.items())
    }


def table(summary: dict[str, dict[str, Estimate]]) -> str:
    lines = ["| checkpoint | " + " | ".join(MEASURES) + " |", "|---" * (len(MEASURES) + 1) + "|"]
    for checkpoint, measures in summary.items():
        cells = [f"{e.mean:.2f} [{e.low:.2f}, {e.high:.2f}] (n={e.n})" if (e := measures.get(m)) else "-" for m in MEASURES]
        lines.append(f"| {checkpoint} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(summary: dict[str, dict[str, Estimate]], out: str | Path) -> None:
    """Two panels: the 1-5 ratings, and the success rate; one bar per checkpoint with its interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (ratings, success) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [2, 1]})
    width = 0.8 / max(1, len(summary))
    for index, (checkpoint, measures) in enumerate(summary.items()):
        for axis, names in ((ratings, ASPECTS), (success, ("success",))):
            shown = [(position, measures[m]) for position, m in enumerate(names) if m in measures]
            if not shown:
                continue
            xs = [position + (index - (len(summary) - 1) / 2) * width for position, _ in shown]
            means = [e.mean for _, e in shown]
            errors = [[e.mean - e.low for _, e in shown], [e.high - e.mean for _, e in shown]]
            axis.bar(xs, means, width, yerr=errors, capsize=4, label=checkpoint)
    ratings.set(xticks=range(len(ASPECTS)), xticklabels=ASPECTS, ylim=(0, 5.5), ylabel="mean rating (1-5)")
    success.set(xticks=[0], xticklabels=["success"], ylim=(0, 1.05), ylabel="share of dialogues")
    ratings.legend(fontsize="small")
    figure.suptitle("Human ratings per checkpoint (95% intervals)")
    figure.tight_layout()
    figure.savefig(out, dpi=120)
    plt.close(figure)


def report(path: str | Path, out: str | Path | None = None) -> str:
    """The table as text; the figure goes to `out` (default: beside the ratings file, as .png)."""
    summary = summarize(path)
    if not summary:
        raise ValueError(f"{path}: no ratings yet")
    out = Path(out) if out else Path(path).with_suffix(".png")
    plot(summary, out)
    return f"{table(summary)}\n\nplot: {out}"
