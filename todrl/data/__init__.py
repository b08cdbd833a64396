"""Corpus readers: raw files -> `Dialogue` records. One reader per corpus, no registry."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, get_args

from rewards.spans import INCAR_SLOTS, MULTIWOZ_ACTS, MULTIWOZ_SLOTS, SGD_ACTS, Vocabulary

from todrl.data.records import Dialogue, Goal, Turn

__all__ = ["DATASETS", "SCORED_DATASETS", "SHARED_FOLDERS", "Dataset", "Dialogue", "Goal", "Turn", "default_data_dir",
           "dev_split_name", "load_dialogues", "span_vocabulary"]

Dataset = Literal["multiwoz21", "incar", "sgd", "synthetic"]
DATASETS: tuple[str, ...] = get_args(Dataset)
SCORED_DATASETS: tuple[str, ...] = ("multiwoz21", "incar", "sgd")
"""Corpora with an evaluator; a synthetic corpus (`todrl.synth`, MultiWOZ's grammar) trains, it is no benchmark."""
SHARED_FOLDERS = {"multiwoz21": "multiwoz21", "incar": "kvret", "sgd": "sgd", "synthetic": "synthetic"}
"""Folder of each corpus under the data root."""


def dev_split_name(split: str) -> str:
    """In-Car and SGD call their dev split "dev"; "val" and "validation" (MultiWOZ's and the hub's names) mean it."""
    return {"val": "dev", "validation": "dev"}.get(split, split)


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
    if dataset == "synthetic":
        from todrl.synth.corpus import load_synthetic

        if split != "train":
            raise ValueError(f"a synthetic corpus has one split, train (not {split!r}): hold a dev slice out of it with "
                             "--dev-split train --dev-dialogues N")
        return load_synthetic(data_dir)
    from todrl.data.sgd import load_sgd

    return load_sgd(data_dir, split, services=services)


def span_vocabulary(dataset: str, data_dir: str | Path | None = None) -> Vocabulary:
    """The slots, domains and acts that a corpus's targets are written with: what its rewards read them by.

    SGD's come from the schemas of every split found (test services are unseen in train).
    """
    if dataset in ("multiwoz21", "synthetic"):
        return Vocabulary(MULTIWOZ_SLOTS, acts=MULTIWOZ_ACTS)
    if dataset == "incar":
        return Vocabulary(INCAR_SLOTS, acts=())
    if dataset != "sgd":
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    from todrl.data.errors import DataError
    from todrl.data.sgd import load_sgd_schema

    root = Path(data_dir) if data_dir is not None else default_data_dir(dataset)
    slots: dict[str, tuple[str, ...]] = {}
    for split in ("train", "dev", "test"):
        try:
            slots.update((name, service.informable) for name, service in load_sgd_schema(root, split).items())
        except DataError:
            continue
    if not slots:
        raise DataError(root, "no SGD schema.json found for any split")
    return Vocabulary(slots, acts=SGD_ACTS)
