"""Train/dev selection shared by SFT and RL: held-out slices and low-resource fractions, deterministic by seed."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import ClassVar
from pathlib import Path

from todrl.data import Dataset, load_dialogues
from todrl.data.records import Dialogue


def fraction(dialogues: list[Dialogue], share: float, seed: int) -> list[Dialogue]:
    """A seeded random `share` of the dialogues (the low-resource runs' 1%/5%/10% subsets)."""
    if not 0 < share <= 1:
        raise ValueError(f"train fraction must be in (0, 1], got {share}")
    if share == 1:
        return dialogues
    keep = max(1, math.ceil(share * len(dialogues)))
    chosen = set(random.Random(seed).sample(range(len(dialogues)), keep))
    return [d for i, d in enumerate(dialogues) if i in chosen]


def train_dev(
    dataset: str,
    data_dir: str | Path | None,
    train_split: str,
    dev_split: str,
    dev_dialogues: int = 0,
    train_fraction: float = 1.0,
    services: list[str] | None = None,
    seed: int = 0,
) -> tuple[list[Dialogue], list[Dialogue]]:
    """Training and dev dialogues.

    When both splits are the same (MultiWOZ offline trains on `val`), the last
    `dev_dialogues` of a seeded shuffle are held out for selection, so the test
    split is never used to pick checkpoints. Otherwise `dev_dialogues` > 0 caps
    the dev split's size (a dev slice keeps evaluation cheap).
    """
    train = load_dialogues(dataset, data_dir, train_split, services)
    if train_split == dev_split:
        if dev_dialogues <= 0 or dev_dialogues >= len(train):
            raise ValueError(
                f"train and dev are both split {train_split!r}: set dev_dialogues to hold out between 1 and {len(train) - 1} dialogues"
            )
        order = list(range(len(train)))
        random.Random(seed).shuffle(order)
        held = set(order[-dev_dialogues:])
        dev = [d for i, d in enumerate(train) if i in held]
        train = [d for i, d in enumerate(train) if i not in held]
    else:
        dev = load_dialogues(dataset, data_dir, dev_split, services)
        if dev_dialogues > 0:
            dev = dev[:dev_dialogues]
    return fraction(train, train_fraction, seed), dev


@dataclass
class DataConfig:
    """Which dialogues a run trains and selects on; SFT and RL configs extend it."""

    dataset: Dataset = "multiwoz21"
    """Corpus: MultiWOZ 2.1, In-Car (KVRET), Schema-Guided Dialogue, or a synthetic one (python -m todrl.synth)."""
    data_dir: str | None = None
    """Corpus location; None = the MultiWOZ 2.1 sample embedded in todrl (or $TODRL_DATA/<corpus> for the others)."""
    train_split: str = "train"
    """Split the training dialogues come from."""
    dev_split: str = "val"
    """Split the dev dialogues (checkpoint selection) come from; it may be train_split (see dev_dialogues)."""
    dev_dialogues: int = 0
    """Dialogues held out for selection when train_split == dev_split; otherwise a cap on the dev split (0 = all)."""
    services: list[str] | None = None
    """SGD only: keep dialogues whose services are all in this list."""
    train_fraction: float = 1.0
    """Seeded share of the training dialogues (low-resource runs)."""
    split_seed: int = 42
    """Draws the held-out dev slice and the training share. Kept apart from the training seed, so that RL runs with
    different seeds select on the same dialogues their SFT start held out, never on ones it trained on."""
    extra_train: list[str] | None = None
    """Synthetic corpora (`python -m todrl.synth` output folders or .jsonl files, comma-separated) whose dialogues
    join the training dialogues, after train_fraction has drawn the real ones; dev stays real (stage 1 of two-stage
    fine-tuning)."""

    RANGES: ClassVar[dict[str, str]] = {"dev_dialogues": "[0, inf)", "train_fraction": "(0, 1]", "split_seed": "[0, 4294967295]"}

    def load_train_dev(self) -> tuple[list[Dialogue], list[Dialogue]]:
        train, dev = train_dev(self.dataset, self.data_dir, self.train_split, self.dev_split, self.dev_dialogues,
                               self.train_fraction, self.services, self.split_seed)
        for corpus in self.extra_train or ():
            train += load_dialogues("synthetic", corpus, "train")
        return train, dev
