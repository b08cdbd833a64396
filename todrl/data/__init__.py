"""Corpus readers: raw files -> `Dialogue` records. One reader per corpus, no registry."""

from __future__ import annotations

import os
from pathlib import Path

from todrl.data.records import Dialogue, Goal, Turn

__all__ = ["DATASETS", "SHARED_FOLDERS", "Dialogue", "Goal", "Turn", "default_data_dir", "load_dialogues"]

DATASETS = ("multiwoz21", "incar", "sgd")
SHARED_FOLDERS = {"multiwoz21": "multiwoz21", "incar": "kvret", "sgd": "sgd"}
"""Folder of each corpus under the data root."""


def default_data_dir(dataset: str) -> Path:
    """Where a corpus is looked for when no path is given: `$TODRL_DATA/<folder>`, else `../shared/data/<folder>`."""
    return Path(os.environ.get("TODRL_DATA") or "../shared/data") / SHARED_FOLDERS[dataset]


def load_dialogues(dataset: str, data_dir: str | Path | None, split: str, services: list[str] | None = None) -> list[Dialogue]:
    """Read one split of a corpus; `data_dir=None` for MultiWOZ means the sample shipped with todrl."""
    if dataset == "multiwoz21":
        from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz

        return load_multiwoz(data_dir or SAMPLE_PATH, split)
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if data_dir is None:
        data_dir = default_data_dir(dataset)
        if not data_dir.exists():
            raise ValueError(f"dataset {dataset!r}: no --data-dir given and {data_dir} does not exist (set TODRL_DATA or pass --data-dir)")
    if dataset == "incar":
        from todrl.data.incar import load_incar

        return load_incar(data_dir, split)
    from todrl.data.sgd import load_sgd

    return load_sgd(data_dir, split, services=services)
