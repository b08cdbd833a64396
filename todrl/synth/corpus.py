"""Synthetic corpora on disk: ``DIR/dialogues.jsonl`` (accepted, one dialogue a line) and ``DIR/rejected.jsonl``
(dropped ones, with their reason), both appended a line at a time and flushed to disk, so a killed run loses at
most the line it was writing. A rerun repairs that torn last line and skips every id either file holds.
``--dataset synthetic --data-dir DIR`` reads the accepted file into `Dialogue` records.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError
from todrl.data.records import Dialogue, Goal, Turn, UserIntent

ACCEPTED = "dialogues.jsonl"
REJECTED = "rejected.jsonl"
DATASET = "synthetic"
_TURN_FIELDS = tuple(f.name for f in fields(Turn))


def corpus_file(path: str | Path) -> Path:
    """A corpus folder's accepted file, or the .jsonl file named."""
    path = Path(path)
    return path / ACCEPTED if path.is_dir() else path


class CorpusWriter:
    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.accepted, self.rejected = (self.folder / name for name in (ACCEPTED, REJECTED))

    def finished(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The records written so far, accepted and rejected, after cutting off a torn last line."""
        return _repair(self.accepted), _repair(self.rejected)

    def append(self, record: dict[str, Any]) -> None:
        path = self.rejected if "reason" in record else self.accepted
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _repair(path: Path) -> list[dict[str, Any]]:
    """Whole lines of `path`; a last line without its newline (a write cut short) is cut off the file."""
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with path.open("r+b") as handle:
            handle.truncate(end)
    return [record for _, record in read_records(path)]


def read_records(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, record) of every non-blank line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "no such file (write one with python -m todrl.synth schema --output DIR)")
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as error:
                raise DataError(path, f"line {number}: not JSON ({error})") from None
            if not isinstance(record, dict) or not isinstance(record.get("id"), str):
                raise DataError(path, f"line {number}: expected an object with an 'id'")
            records.append((number, record))
    return records


def load_synthetic(path: str | Path) -> list[Dialogue]:
    """The accepted dialogues of a corpus folder (or .jsonl file) as records, by id (concurrent runs append in any
    order; dev slices are drawn from this order); errors name the file and line."""
    file = corpus_file(path)
    dialogues = []
    for number, record in read_records(file):
        try:
            dialogues.append(_dialogue(record))
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise DataError(file, f"line {number}: malformed dialogue ({type(error).__name__}: {error})",
                            dialogue_id=record.get("id")) from None
    return sorted(dialogues, key=lambda d: d.id)


def _dialogue(record: dict[str, Any]) -> Dialogue:
    goal = {domain: Goal(**part) for domain, part in record["goal"].items()}
    turns = [Turn(**{name: turn[name] for name in _TURN_FIELDS if name in turn}) for turn in record["turns"]]
    if not turns:
        raise ValueError("no turns")
    intents = [_intent(turn["flow"]) for turn in record["turns"] if "flow" in turn]
    return Dialogue(id=record["id"], goal=goal, turns=turns, dataset=DATASET, services=list(goal),
                    intents=intents if len(intents) == len(turns) else [])


def _intent(step: dict[str, Any]) -> UserIntent:
    """A turn's flow step (`todrl.synth.flow.Step` as written) as the record the state tracker's first stage learns."""
    values = step.get("slot_values") or {}
    return UserIntent(step["intention"], {step["domain"]: dict(values)} if values else {}, step.get("rationale", ""))
