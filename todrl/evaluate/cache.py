"""An on-disk cache of prepared scorers, so that scoring a predictions file does not parse the corpus again.

What a scorer prepares depends only on the data and on todrl's code: the references (goals and the venues they
match, gold states, reference n-grams for BLEU). It is pickled under a key made of the content digests of every
file in the corpus folder, of todrl's evaluation, data and reward code, of the versions of the libraries that
tokenize and match, and of the definitions and options asked for; any change to one of them is a new key, so a
stale entry is never read. Entries live in ``$TODRL_CACHE`` (default ``$XDG_CACHE_HOME/todrl``, else
``~/.cache/todrl``), under ``evaluate/``; deleting the folder is always safe.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.metadata
import os
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import rewards
import todrl

T = TypeVar("T")

FORMAT = "1"
"""Bumped when the layout of an entry changes in a way the code digest would not see."""
LIBRARIES = ("sacrebleu", "rapidfuzz")
_CODE = (Path(todrl.__file__).parent / "evaluate", Path(todrl.__file__).parent / "data", Path(rewards.__file__).parent)


def cache_dir() -> Path:
    if "TODRL_CACHE" in os.environ:
        return Path(os.environ["TODRL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "todrl"


def digest_files(files: Iterable[Path], root: Path) -> str:
    """One digest of the files' names (relative to `root`) and contents."""
    total = hashlib.blake2b(digest_size=16)
    for path in sorted(files):
        total.update(str(path.relative_to(root)).encode() + b"\0")
        total.update(hashlib.blake2b(path.read_bytes()).digest())
    return total.hexdigest()


def tree_digest(folder: Path, pattern: str = "*") -> str:
    return digest_files((p for p in folder.rglob(pattern) if p.is_file() and "__pycache__" not in p.parts), folder)


def entry_key(data_dir: Path, *parts: str) -> str:
    """The key of an entry prepared from the corpus in `data_dir` under `parts` (definitions, options...)."""
    versions = [f"{name}=={_version(name)}" for name in LIBRARIES]
    pieces = [FORMAT, sys.version.split()[0], *versions, *(tree_digest(c, "*.py") for c in _CODE), tree_digest(data_dir), *parts]
    return hashlib.blake2b("\n".join(pieces).encode(), digest_size=16).hexdigest()


def cached(key: str, build: Callable[[], T]) -> T:
    """The object stored under `key`, built (and stored, atomically) when there is none or it cannot be read."""
    path = cache_dir() / "evaluate" / f"{key}.pickle"
    try:
        with path.open("rb") as handle:
            return _load(handle)
    except FileNotFoundError:
        pass
    except Exception as error:  # a truncated or foreign file: rebuilt, never trusted
        print(f"warning: unreadable cache entry {path} ({error}); rebuilding it", file=sys.stderr)
    value = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
        pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(handle.name, path)
    return value


def _load(handle) -> object:
    """Unpickling hundreds of thousands of small objects triggers the cycle collector again and again, and every
    later full collection would walk them all; the collector has nothing to find in them, so it is paused while
    they are read, and they are then frozen out of its reach (they live as long as the process)."""
    gc.disable()
    try:
        value = pickle.load(handle)
        gc.freeze()
        return value
    finally:
        gc.enable()


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"
