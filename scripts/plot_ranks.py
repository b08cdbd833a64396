"""Heat-map of the ranks AdaLoRA/SUCG allocated, per layer and module (seed 000, Fig. 1 right).

Reads only the checkpoint's adapter_config.json (its rank_pattern), so it
needs neither the base model nor the weights:

    python scripts/plot_ranks.py runs/sucg/checkpoint --out ranks.png
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from todrl.adapters import ranks_from_pattern  # noqa: E402


@dataclass(frozen=True)
class Cell:
    stack: str
    """encoder / decoder, or empty for decoder-only models."""
    layer: int
    module: str
    """Module within the layer, e.g. SelfAttention.q or mlp.down_proj."""


def locate(module_path: str) -> Cell:
    """Split a module path at its layer index: encoder.block.1.layer.0.SelfAttention.q -> (encoder, 1, SelfAttention.q)."""
    parts = module_path.split(".")
    index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
    if index is None:
        raise ValueError(f"module path {module_path!r} has no layer index")
    stack = parts[0] if parts[0] in ("encoder", "decoder") else ""
    inner = [p for p in parts[index + 1 :] if not p.isdigit() and p != "layer"]
    return Cell(stack, int(parts[index]), ".".join(inner))


def load_ranks(checkpoint: Path) -> dict[str, int]:
    config_path = checkpoint / "adapter_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} not found: CHECKPOINT must be a folder written by save_pretrained")
    config = json.loads(config_path.read_text())
    if not config.get("rank_pattern"):
        raise ValueError(
            f"{config_path} has no rank_pattern: only AdaLoRA/SUCG checkpoints saved after the first rank "
            f"allocation carry one (peft_type here: {config.get('peft_type')})"
        )
    return ranks_from_pattern(config["rank_pattern"])


def plot_ranks(ranks: dict[str, int], out: Path, title: str) -> None:
    cells = {locate(path): rank for path, rank in ranks.items()}
    columns = sorted({(c.stack != "encoder", c.stack, c.layer) for c in cells})
    modules = sorted({c.module for c in cells}, key=lambda m: (m.split(".")[0], m))
    grid = [[float("nan")] * len(columns) for _ in modules]
    for cell, rank in cells.items():
        grid[modules.index(cell.module)][columns.index((cell.stack != "encoder", cell.stack, cell.layer))] = rank

    highest = max(ranks.values()) or 1
    figure, axes = plt.subplots(figsize=(max(4.5, 2.5 + 0.45 * len(columns)), 1.2 + 0.35 * len(modules)))
    image = axes.imshow(grid, cmap="viridis", aspect="auto", vmin=0, vmax=highest)
    for row, values in enumerate(grid):
        for column, rank in enumerate(values):
            if rank == rank:  # not NaN: this module exists in this layer
                shade = "black" if rank > 0.6 * highest else "white"
                axes.text(column, row, str(int(rank)), ha="center", va="center", color=shade, fontsize=7)
    axes.set_xticks(range(len(columns)), [f"{stack[:3]}\n{layer}".strip() for _, stack, layer in columns], fontsize=8)
    axes.set_yticks(range(len(modules)), modules, fontsize=8)
    axes.set_xlabel("layer")
    axes.set_title(title, fontsize=9)
    figure.colorbar(image, ax=axes, label="rank")
    figure.tight_layout()
    figure.savefig(out, dpi=150)
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="folder written by PeftModel.save_pretrained")
    parser.add_argument("--out", type=Path, default=Path("ranks.png"))
    args = parser.parse_args(argv)
    ranks = load_ranks(args.checkpoint)
    mean = sum(ranks.values()) / len(ranks)
    name = "/".join(args.checkpoint.resolve().parts[-2:])
    plot_ranks(ranks, args.out, f"{name}: ranks (mean {mean:.2f})")
    print(f"wrote {args.out} ({len(ranks)} modules, mean rank {mean:.2f})")


if __name__ == "__main__":
    main()
