"""MultiWOZ goals in words, as the corpus's own crowd workers read them, for a person to pursue in the rating app."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from todrl.data.errors import DataError
from todrl.data.multiwoz import read_records

_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class GoalCard:
    dialogue_id: str
    text: str

    def summary(self, width: int = 90) -> str:
        first = self.text.split(". ")[0]
        return first if len(first) <= width else first[: width - 1] + "…"


def load_goals(data_dir: str | Path, split: str = "test") -> list[GoalCard]:
    """One card per dialogue of `split`: its goal's ``message`` sentences without their HTML emphasis."""
    cards = []
    for dialogue_id, record in read_records(data_dir, split).items():
        message = (record.get("goal") or {}).get("message") if isinstance(record, dict) else None
        if isinstance(message, str):
            message = [message]
        if not isinstance(message, list) or not message or not all(isinstance(m, str) for m in message):
            raise DataError(data_dir, "the goal has no 'message' sentences to show", dialogue_id=dialogue_id)
        sentences = [" ".join(html.unescape(_TAG.sub("", m)).split()).rstrip(".") for m in message]
        cards.append(GoalCard(dialogue_id, ". ".join(sentences) + "."))
    return cards
