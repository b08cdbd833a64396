"""What a synthetic corpus holds (seed 003, Fig. 4): slot-values per dialogue and dialogue lengths by complexity
level, and how many dialogues were accepted or dropped, by reason."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from todrl.synth.validate import REASONS


def slot_values(record: dict[str, Any]) -> int:
    """Slot-values of the final belief state (what a state tracker must get right at the end)."""
    return sum(len(slots) for slots in record["turns"][-1]["belief_state"].values())


def _histogram(title: str, counts: dict[int, Counter[int]]) -> list[str]:
    lines = [title]
    for level in sorted(counts):
        bins = counts[level]
        total = sum(bins.values())
        mean = sum(k * n for k, n in bins.items()) / max(1, total)
        lines.append(f"  level {level} ({total} dialogues, mean {mean:.1f}): "
                     + "  ".join(f"{k}:{n}" for k, n in sorted(bins.items())))
    return lines


def summary(accepted: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> str:
    total = len(accepted) + len(rejected)
    lines = [f"{total} dialogues: {len(accepted)} accepted ({100 * len(accepted) / max(1, total):.0f}%), "
             f"{len(rejected)} dropped"]
    for reason, n in Counter(r["reason"] for r in rejected).most_common():
        lines.append(f"  dropped {n:4d}  {reason}: {REASONS.get(reason, '')}")
    retried = Counter()
    for record in accepted + rejected:
        retried.update(record.get("failures", {}))
    if retried:
        lines.append("failed checks before a retry or drop: " + ", ".join(f"{k} {n}" for k, n in retried.most_common()))
    sizes: dict[int, Counter[int]] = {}
    lengths: dict[int, Counter[int]] = {}
    for record in accepted:
        sizes.setdefault(record["level"], Counter())[slot_values(record)] += 1
        lengths.setdefault(record["level"], Counter())[len(record["turns"])] += 1
    lines += _histogram("slot-values per dialogue (value:count)", sizes)
    lines += _histogram("turns per dialogue (turns:count)", lengths)
    return "\n".join(lines)


def plot(accepted: list[dict[str, Any]], path: Path) -> None:
    """Two histograms, slot-values and turns per dialogue, one series per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    levels = sorted({r["level"] for r in accepted})
    for axis, measure, title in ((axes[0], slot_values, "slot-values per dialogue"),
                                 (axes[1], lambda r: len(r["turns"]), "turns per dialogue")):
        data = [[measure(r) for r in accepted if r["level"] == level] for level in levels]
        if any(data):
            axis.hist(data, bins=range(0, max(max(d, default=0) for d in data) + 2), label=[f"level {v}" for v in levels])
        axis.set_title(title)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
