"""Reward and KL curves of RL runs, to PNG.

    python scripts/plot_rewards.py runs/rl/default
    python scripts/plot_rewards.py runs/rl/tod runs/rl/none --output curves.png --smooth 8

Reads each run's `metrics.jsonl` (one line per iteration, written by
`python -m todrl.rl`) and draws, per iteration: the sampled task reward, the
KL to the SFT policy, the KL coefficient beta, and the dev score where the run
evaluated.  Noisy curves are smoothed with a trailing moving average; the raw
points stay visible underneath.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

PANELS = (
    ("env/task_reward", "task reward (sampled rollouts)"),
    ("objective/kl", "KL to the SFT policy (nats / episode)"),
    ("objective/kl_coef", "KL coefficient beta"),
    ("eval/combined", "dev Combined (greedy)"),
    ("eval/task_reward", "dev task reward (greedy)"),
)


def read_metrics(run: Path) -> list[dict[str, float]]:
    path = run / "metrics.jsonl" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.jsonl (is {run} a todrl.rl output directory?)")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not JSON ({error})") from None
    return rows


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` values at each point (fewer at the start)."""
    averaged, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        averaged.append(total / min(index + 1, window))
    return averaged


def plot(runs: dict[str, list[dict[str, float]]], output: Path, smooth: int = 1) -> list[str]:
    """Draw the panels that some run has data for; returns their metric names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [(key, title) for key, title in PANELS if any(key in row for rows in runs.values() for row in rows)]
    if not panels:
        raise ValueError("none of the runs logged a metric to plot")
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for colour, (name, rows) in enumerate(runs.items()):
        for axis, (key, _) in zip(axes[0], panels):
            points = [(row["iteration"], row[key]) for row in rows if key in row]
            if not points:
                continue
            steps, values = zip(*points)
            if key.startswith("eval/"):
                axis.plot(steps, values, color=f"C{colour}", marker="o", lw=1.2, label=name)
            else:
                axis.plot(steps, values, color=f"C{colour}", alpha=0.25, lw=0.8)
                axis.plot(steps, moving_average(values, smooth), color=f"C{colour}", lw=1.6, label=name)
    for axis, (_, title) in zip(axes[0], panels):
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
    return [key for key, _ in panels]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="todrl.rl output directories (or metrics.jsonl files)")
    parser.add_argument("--output", type=Path, help="PNG to write (default: <first run>/rewards.png)")
    parser.add_argument("--smooth", type=int, default=5, help="moving-average window in iterations (1 = raw)")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        parser.error("--smooth must be >= 1")
    try:
        runs = {str(run): read_metrics(run) for run in args.runs}
        output = args.output or (args.runs[0] if args.runs[0].is_dir() else args.runs[0].parent) / "rewards.png"
        drawn = plot(runs, output, args.smooth)
    except (FileNotFoundError, ValueError) as error:
        print(f"plot_rewards: {error}", file=sys.stderr)
        return 2
    print(f"wrote {output} ({', '.join(drawn)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
