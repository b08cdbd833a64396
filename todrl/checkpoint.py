"""Checkpoints that survive interruption: written beside the target, then swapped in by rename.

A reader sees either the old checkpoint or the new one, never a half-written
directory; a crash between the two renames leaves `.NAME.old`, which
`recover` puts back.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from peft import PeftModel
from transformers.utils import logging as hf_logging

STATE_FILE = "trainer_state.json"
OPTIMIZER_FILE = "optimizer.pt"


def recover(target: Path) -> None:
    """Undo a swap interrupted between its two renames."""
    old = target.parent / f".{target.name}.old"
    if old.is_dir() and not target.exists():
        os.replace(old, target)


@contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `target` only if the block completes."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    scratch = target.parent / f".{target.name}.tmp-{os.getpid()}"
    old = target.parent / f".{target.name}.old"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
    os.replace(scratch, target)
    shutil.rmtree(old, ignore_errors=True)


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(target: Path, model, tokenizer, state: dict[str, Any], training: dict[str, Any] | None = None,
                    weights: dict[str, torch.Tensor] | None = None) -> None:
    """`save_pretrained` model and tokenizer plus the loop's state, atomically.

    `state` is JSON (step, metrics, config); `training` holds tensors needed to
    resume exactly (optimizer, scheduler, RNG), kept out of the model files so
    that transformers and PEFT load the directory as an ordinary checkpoint.
    `weights` is the model's full state dict when its own parameters are shards
    (FSDP), else the model's parameters are written.
    """
    # Only the trainable adapter of a PEFT model (never NLPO's mask snapshot); transformers' own "Writing model
    # shards" bar would interleave with the training loop's, so it is off while saving.
    adapters = {"selected_adapters": [model.active_adapter]} if isinstance(model, PeftModel) else {}
    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with atomic_directory(target) as scratch:
            model.save_pretrained(scratch, state_dict=weights, **adapters)
            tokenizer.save_pretrained(scratch)
            (scratch / STATE_FILE).write_text(json.dumps(state, indent=2, default=str))
            if training is not None:
                torch.save(training, scratch / OPTIMIZER_FILE)
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def load_state(directory: Path) -> tuple[dict[str, Any], dict[str, Any] | None]:
    directory = Path(directory)
    recover(directory)
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        raise FileNotFoundError(f"{directory}: no {STATE_FILE}; not a todrl checkpoint to resume from")
    state = json.loads(state_file.read_text())
    training_file = directory / OPTIMIZER_FILE
    training = torch.load(training_file, weights_only=False) if training_file.is_file() else None
    return state, training


def load_resumable(directory: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """`load_state` for `--resume`, which needs the training tensors too (a sharded run writes none)."""
    state, training = load_state(directory)
    if training is None:
        raise ValueError(f"{directory}: no {OPTIMIZER_FILE} (a sharded run keeps no optimizer state) to resume from; "
                         "start a new run from this checkpoint instead")
    return state, training
