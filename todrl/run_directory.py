"""One run per output directory: locked while it runs, never silently replaced, resumed only as the same run.

A run takes an exclusive lock (`output_dir/.lock`, released by the kernel when the process ends, however it
ends), so a second run into the same directory fails at once, naming the holder. A fresh run refuses a directory
that holds a run's checkpoints or summary unless `overwrite` asks to replace them; `resume` continues one, after
the crash states that checkpoint writing can leave are repaired, and only with the settings it was started with
(`RESUMABLE` names those that may change, such as a longer schedule).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from todrl.checkpoint import STATE_FILE, recover

LOCK_FILE = ".lock"
RUN_FILES = ("best", "last", "base", "summary.json", "metrics.jsonl", "config.yaml")
"""What a run writes besides its TensorBoard folder; `overwrite` removes exactly these."""
LENGTH_FIELDS = ("epochs", "max_steps", "episodes")
"""Settings that lengthen a run; an AdaLoRA/SUCG schedule is laid out over the run's length, so there they are fixed."""
RESUMABLE = (*LENGTH_FIELDS, "eval_every", "save_every", "eval_dialogues", "resume", "overwrite")
"""Settings a resumed run may change: how long it goes on and how often it evaluates and saves."""


class RunDirectoryError(ValueError):
    """The output directory cannot be used as asked (in use, holding another run, or resumed differently)."""


@contextmanager
def claim(out: Path, config: Any, tracker: str, main_process: bool = True) -> Iterator[None]:
    """Hold `out` for the run of `config` (see the module doc); other processes of a distributed run only wait."""
    if config.resume and config.overwrite:
        raise RunDirectoryError("resume and overwrite exclude each other: continue the run in output_dir, or replace it")
    if config.resume and not out.is_dir():
        raise RunDirectoryError(f"--resume: no run at {out} to continue")
    if not main_process:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK_FILE).open("a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "unknown"
            raise RunDirectoryError(f"{out} is in use by another run (pid {holder}); wait for it to end or choose "
                                    "another output_dir") from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        repair(out)
        if config.resume:
            check_resumed_settings(out, config)
        else:
            clear_for_fresh_run(out, tracker, config.overwrite)
        yield


def repair(out: Path) -> None:
    """Undo what a writer killed mid-checkpoint left: a swap stopped between its renames, scratch directories.

    Called with the lock held, so no live writer owns a scratch directory.
    """
    for name in ("best", "last", "base"):
        recover(out / name)
    for scratch in out.glob(".*.tmp-*"):
        shutil.rmtree(scratch, ignore_errors=True)


def clear_for_fresh_run(out: Path, tracker: str, overwrite: bool) -> None:
    found = [name for name in RUN_FILES[:4] if (out / name).exists()]
    if found and not overwrite:
        raise RunDirectoryError(f"{out} already holds a run ({', '.join(found)}); pass --resume to continue it, "
                                "--overwrite to replace it, or choose another output_dir")
    for name in (*RUN_FILES, tracker):
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def check_resumed_settings(out: Path, config: Any) -> None:
    """Compare the settings given now with those `last/` was written under; only `RESUMABLE` ones may differ."""
    state_file = out / "last" / STATE_FILE
    if not state_file.is_file():
        raise RunDirectoryError(f"--resume: no checkpoint at {out / 'last'} to continue from")
    try:
        saved = json.loads(state_file.read_text())["config"]
    except (ValueError, KeyError) as error:
        raise RunDirectoryError(f"{state_file}: cannot read the run's settings ({error})") from None
    now, saved = _flat(json.loads(json.dumps(dataclasses.asdict(config), default=str))), _flat(saved)
    fixed = LENGTH_FIELDS if getattr(getattr(config, "adapter", None), "type", None) in ("adalora", "sucg") else ()
    changed = {name: (saved[name], value) for name, value in now.items() if name in saved and saved[name] != value}
    refused = {name: values for name, values in changed.items() if name not in RESUMABLE or name in fixed}
    if refused:
        listed = "; ".join(f"{name}: {old!r} in the run, {new!r} now" for name, (old, new) in sorted(refused.items()))
        why = " (the adapter's rank schedule is laid out over the run's length)" if set(refused) & set(fixed) else ""
        raise RunDirectoryError(f"--resume: {out} was started with other settings{why}: {listed}; resume with the "
                                "run's settings, or start a new run")
    for name, (old, new) in sorted(changed.items()):
        if name not in ("resume", "overwrite"):
            print(f"resume: {name} changed from {old!r} to {new!r}")


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out |= _flat(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines log; a torn last line (a write cut by a kill) is dropped, any other bad line
    is an error naming the file and line."""
    lines = path.read_text().splitlines(keepends=True)
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError as error:
            if number == len(lines) and not line.endswith("\n"):
                print(f"{path}: dropping the torn last line {number} (an interrupted write)")
                break
            raise RunDirectoryError(f"{path}, line {number}: not a JSON record ({error})") from None
    return records
