"""Transcripts and ratings of the rating app, in one SQLite file.

Every turn and every rating is committed the moment it exists, and the app
rebuilds the page from this file on each interaction, so a crash or a reload
loses nothing. A dialogue holds one conversation per system the person talks
to: one (blind) or two (side by side), each with its own turns and verdict.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODES = ("blind", "side-by-side")
ASPECTS = ("appropriateness", "fluency")
"""Per-response ratings on a 1-5 scale (seed 004, Sec. 6.3)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dialogues (
    id INTEGER PRIMARY KEY, goal_id TEXT NOT NULL, goal TEXT NOT NULL, mode TEXT NOT NULL,
    started REAL NOT NULL, finished REAL);
CREATE TABLE IF NOT EXISTS conversations (
    id INTEGER PRIMARY KEY, dialogue_id INTEGER NOT NULL REFERENCES dialogues(id), position INTEGER NOT NULL,
    checkpoint TEXT NOT NULL, success INTEGER);
CREATE TABLE IF NOT EXISTS turns (
    conversation_id INTEGER NOT NULL REFERENCES conversations(id), turn INTEGER NOT NULL, user TEXT NOT NULL,
    response TEXT NOT NULL, structured TEXT NOT NULL, created REAL NOT NULL,
    appropriateness INTEGER CHECK (appropriateness BETWEEN 1 AND 5), fluency INTEGER CHECK (fluency BETWEEN 1 AND 5),
    PRIMARY KEY (conversation_id, turn));
"""


@dataclass
class StoredTurn:
    turn: int
    user: str
    response: str
    structured: dict[str, Any]
    """The system turn as `SystemTurn.to_json` wrote it."""
    appropriateness: int | None = None
    fluency: int | None = None


@dataclass
class Conversation:
    id: int
    position: int
    checkpoint: str
    success: bool | None
    turns: list[StoredTurn] = field(default_factory=list)


@dataclass
class StoredDialogue:
    id: int
    goal_id: str
    goal: str
    mode: str
    finished: bool
    conversations: list[Conversation]


class RatingStore:
    """``RatingStore(path)``: opens (or creates) the file; each method is one committed transaction."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30)
        try:
            connection.execute("PRAGMA foreign_keys = ON")
            with connection:
                yield connection
        finally:
            connection.close()

    def start(self, goal_id: str, goal: str, checkpoints: Sequence[str], mode: str, rng: random.Random | None = None) -> int:
        """A new dialogue. Blind: one of the checkpoints, the one with fewer dialogues so far (ties at random),
        so that both get rated about equally often; side by side: all of them, in random order."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        rng = rng or random.Random()
        with self._connect() as db:
            if mode == "blind":
                counts = dict(db.execute("SELECT checkpoint, COUNT(*) FROM conversations GROUP BY checkpoint").fetchall())
                fewest = min(counts.get(c, 0) for c in checkpoints)
                chosen = [rng.choice([c for c in checkpoints if counts.get(c, 0) == fewest])]
            else:
                chosen = rng.sample(list(checkpoints), len(checkpoints))
            cursor = db.execute("INSERT INTO dialogues (goal_id, goal, mode, started) VALUES (?, ?, ?, ?)",
                                (goal_id, goal, mode, time.time()))
            dialogue_id = int(cursor.lastrowid)
            db.executemany("INSERT INTO conversations (dialogue_id, position, checkpoint) VALUES (?, ?, ?)",
                           [(dialogue_id, position, checkpoint) for position, checkpoint in enumerate(chosen)])
        return dialogue_id

    def dialogue(self, dialogue_id: int) -> StoredDialogue | None:
        with self._connect() as db:
            head = db.execute("SELECT goal_id, goal, mode, finished FROM dialogues WHERE id = ?", (dialogue_id,)).fetchone()
            if head is None:
                return None
            conversations = [
                Conversation(cid, position, checkpoint, None if success is None else bool(success))
                for cid, position, checkpoint, success in db.execute(
                    "SELECT id, position, checkpoint, success FROM conversations WHERE dialogue_id = ? ORDER BY position",
                    (dialogue_id,))
            ]
            for conversation in conversations:
                rows = db.execute("SELECT turn, user, response, structured, appropriateness, fluency FROM turns "
                                  "WHERE conversation_id = ? ORDER BY turn", (conversation.id,))
                conversation.turns = [StoredTurn(t, u, r, json.loads(s), a, f) for t, u, r, s, a, f in rows]
        return StoredDialogue(dialogue_id, head[0], head[1], head[2], head[3] is not None, conversations)

    def add_turn(self, conversation_id: int, user: str, response: str, structured: dict[str, Any]) -> int:
        with self._connect() as db:
            (count,) = db.execute("SELECT COUNT(*) FROM turns WHERE conversation_id = ?", (conversation_id,)).fetchone()
            db.execute("INSERT INTO turns (conversation_id, turn, user, response, structured, created) VALUES (?, ?, ?, ?, ?, ?)",
                       (conversation_id, count, user, response, json.dumps(structured), time.time()))
        return count

    def rate(self, conversation_id: int, turn: int, aspect: str, value: int) -> None:
        if aspect not in ASPECTS:
            raise ValueError(f"unknown aspect {aspect!r}; choose one of {', '.join(ASPECTS)}")
        if value not in range(1, 6):
            raise ValueError(f"{aspect} rating must be 1-5, got {value!r}")
        with self._connect() as db:
            db.execute(f"UPDATE turns SET {aspect} = ? WHERE conversation_id = ? AND turn = ?", (value, conversation_id, turn))

    def judge(self, conversation_id: int, success: bool) -> None:
        with self._connect() as db:
            db.execute("UPDATE conversations SET success = ? WHERE id = ?", (int(success), conversation_id))

    def finish(self, dialogue_id: int) -> None:
        with self._connect() as db:
            db.execute("UPDATE dialogues SET finished = ? WHERE id = ?", (time.time(), dialogue_id))

    def ratings(self) -> list[tuple[str, str, float]]:
        """(checkpoint, measure, value) for every rating given: appropriateness and fluency per response,
        success (0/1) per judged conversation."""
        with self._connect() as db:
            rows = [(c, aspect, float(v)) for aspect in ASPECTS for c, v in db.execute(
                f"SELECT c.checkpoint, t.{aspect} FROM turns t JOIN conversations c ON c.id = t.conversation_id "
                f"WHERE t.{aspect} IS NOT NULL")]
            rows += [(c, "success", float(v)) for c, v in db.execute(
                "SELECT checkpoint, success FROM conversations WHERE success IS NOT NULL")]
        return rows
