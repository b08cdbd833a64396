"""Corpus readers: raw files -> `Dialogue` records. One reader per corpus, no registry."""

from __future__ import annotations

import os
from pathlib import Path

from todrl.data.records import Dialogue, Goal, Turn

__all__ = ["DATASETS", "Dialogue", "Goal", "Turn", "default_data_dir", "load_dialogues"]

DATASETS = ("multiwoz21", "incar", "sgd")
_SHARED_NAMES = {"multiwoz21": "multiwoz21", "incar": "kvret", "sgd": "sgd"}


def default_data_dir(dataset: str) -> Path | None:
    """Where a dataset is looked for when no path is given: `$TODRL_DATA/<name>` if set, else nothing."""
    root = os.environ.get("TODRL_DATA")
    return Path(root) / _SHARED_NAMES[dataset] if root else None


def load_dialogues(dataset: str, data_dir: str | Path | None, split: str, services: list[str] | None = None) -> list[Dialogue]:
    """Read one split of a corpus; `data_dir=None` for MultiWOZ means the sample shipped with todrl."""
    if dataset == "multiwoz21":
        from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz

        return load_multiwoz(data_dir or SAMPLE_PATH, split)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    data_dir = data_dir or default_data_dir(dataset)
    if data_dir is None:
        raise ValueError(f"dataset {dataset!r} needs --data-dir (or TODRL_DATA): only MultiWOZ has an embedded sample")
    if dataset == "incar":
        from todrl.data.incar import load_incar

        return load_incar(data_dir, split)
    from todrl.data.sgd import load_sgd

    return load_sgd(data_dir, split, services=services)
