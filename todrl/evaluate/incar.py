"""In-Car Assistant (KVRET) scores: the result type, and todrl's own stricter definition (``todrl``).

Published tables use LABES's or GALAXY's definitions (`incar_published`).
todrl's scores todrl's own references (`todrl.data.incar`) instead:
Match is the share of all dialogues whose final predicted constraints equal
the gold ones over the domain's informable slots; SuccF1 is the micro F1, over
dialogues, of the requestable slots the responses provide (as
``[value_<slot>]`` placeholders) against those the driver requested; BLEU is
the same home-made corpus BLEU, on unwrapped replies.  Combined = (Match +
SuccF1) / 2 + BLEU under every definition.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from todrl.data.incar import INCAR_INFORMABLE, INCAR_REQUESTABLE, load_incar
from todrl.data.normalize import normalize_text
from todrl.data.records import Dialogue
from todrl.evaluate.bleu import legacy_bleu
from todrl.evaluate.predictions import Coverage, PredictedTurn, Predictions, check_coverage

_PLACEHOLDER = re.compile(r"\[value_(\w+)\]")


@dataclass
class InCarResult:
    match: float | None
    """None when the predictions carry no states."""
    success_f1: float
    bleu: float
    coverage: Coverage
    definition: str = "todrl"
    """Whose Match, SuccF1 and BLEU these are: "labes", "galaxy" or "todrl"."""
    dialogues: int | None = None
    """Dialogues scored (LABES's batching leaves some out); None: all predicted ones."""
    match_dialogues: int | None = None
    """Dialogues Match counts (the published definitions skip those with an empty gold constraint)."""

    @property
    def combined(self) -> float | None:
        return None if self.match is None else (self.match + self.success_f1) / 2 + self.bleu

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"combined": self.combined}


def final_constraints(state: dict[str, dict[str, str]] | None, domain: str) -> dict[str, str]:
    """The informable part of a state, values normalized like the gold ones."""
    slots = (state or {}).get(domain, {})
    return {slot: normalize_text(value) for slot, value in slots.items() if slot in INCAR_INFORMABLE[domain] and value}


def provided_slots(responses: Sequence[str], domain: str) -> set[str]:
    """Requestable slots filled by some response of a dialogue (placeholders of the domain)."""
    found = {slot for response in responses for slot in _PLACEHOLDER.findall(response.lower())}
    return found & set(INCAR_REQUESTABLE[domain])


class InCarEvaluator:
    def __init__(self, dialogues: Sequence[Dialogue]) -> None:
        self.dialogues = {dialogue.id: dialogue for dialogue in dialogues}

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, split: str = "test") -> InCarEvaluator:
        return cls(load_incar(data_dir, split))

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>") -> InCarResult:
        coverage = check_coverage(predictions, {d: len(x.turns) for d, x in self.dialogues.items()}, source)
        has_states = all(t.state is not None for turns in predictions.values() for t in turns)
        matched = true_positive = false_positive = false_negative = 0
        pairs = []
        for dialogue_id, turns in predictions.items():
            dialogue = self.dialogues[dialogue_id]
            domain = dialogue.services[0]
            pairs += [(normalize_text(t.response), ref.system_delex) for t, ref in zip(turns, dialogue.turns)]
            if has_states:
                matched += self._matches(turns, dialogue, domain)
            wanted = set(dialogue.goal[domain].requestable)
            given = provided_slots([t.response for t in turns], domain)
            true_positive += len(wanted & given)
            false_positive += len(given - wanted)
            false_negative += len(wanted - given)
        f1 = 2 * true_positive / max(2 * true_positive + false_positive + false_negative, 1)
        return InCarResult(
            match=100 * matched / max(len(predictions), 1) if has_states else None,
            success_f1=100 * f1,
            bleu=legacy_bleu(pairs),
            coverage=coverage,
        )

    @staticmethod
    def _matches(turns: Sequence[PredictedTurn], dialogue: Dialogue, domain: str) -> bool:
        if not turns:
            return False
        gold = final_constraints(dialogue.turns[len(turns) - 1].belief_state, domain)
        return final_constraints(turns[-1].state, domain) == gold
