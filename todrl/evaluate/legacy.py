"""The older MultiWOZ evaluator of DAMD, UBAR and PPTOD (what seed 004 and papers before 2021 report).

It differs from the standard one in ways that raise scores: the first turn of
every dialogue is skipped, the database is queried with the gold belief state
unless asked otherwise (``db_state="generated"``), turn domains are the gold
ones, a venue fits the goal when *any* offered venue does (not all of them),
a new offer replaces the old one only when it brings a venue not offered yet,
and BLEU is the home-made one on whitespace tokens (both sides tokenized like
the training targets, `normalize_text`).  Those repositories also
filter trains the wrong way round (``leaveAt`` keeps trains leaving *before*
the time, ``arriveBy`` those arriving *after*); todrl filters correctly unless
``inverted_train_times=True`` reproduces their numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz
from todrl.data.normalize import normalize_text, normalize_time
from todrl.data.records import BeliefState, Dialogue
from todrl.evaluate.bleu import legacy_bleu
from todrl.evaluate.multiwoz import ALWAYS_MATCHED, SEARCHABLE_DOMAINS, DomainGoal, evaluation_goal
from todrl.evaluate.normalization import normalize_response
from todrl.evaluate.predictions import Coverage, Predictions, check_coverage

DbState = Literal["gold", "generated"]
_TIME_SLOTS = ("leave", "arrive")


@dataclass
class LegacyResult:
    inform: float
    success: float
    bleu: float
    coverage: Coverage
    db_state: DbState
    inverted_train_times: bool

    @property
    def combined(self) -> float:
        return (self.inform + self.success) / 2 + self.bleu

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"combined": self.combined}


def _minutes(value: str) -> int | None:
    time = normalize_time(value)
    return None if time is None else int(time[:2]) * 60 + int(time[3:])


class LegacyEvaluator:
    """Inform / Success / BLEU as DAMD, UBAR and PPTOD compute them (see the module doc)."""

    def __init__(self, dialogues: Sequence[Dialogue], db: MultiWozDB, inverted_train_times: bool = False) -> None:
        self.dialogues = {dialogue.id: dialogue for dialogue in dialogues}
        self.goals = {dialogue.id: evaluation_goal(dialogue.goal) for dialogue in dialogues}
        self.inverted_train_times = inverted_train_times
        self._db = db
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], frozenset[str]] = {}

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, split: str = "test", inverted_train_times: bool = False) -> LegacyEvaluator:
        data_dir = Path(data_dir)
        return cls(load_multiwoz(data_dir, split), MultiWozDB(data_dir / "db"), inverted_train_times)

    def venues(self, domain: str, constraints: Mapping[str, str]) -> frozenset[str]:
        """Names of matching venues (train ids for trains); names themselves never constrain, as there."""
        constraints = {slot: value for slot, value in constraints.items() if slot != "name"}
        key = (domain, tuple(sorted(constraints.items())))
        if key not in self._cache:
            self._cache[key] = self._query(domain, constraints)
        return self._cache[key]

    def _query(self, domain: str, constraints: dict[str, str]) -> frozenset[str]:
        if not self.inverted_train_times or domain != "train":
            return frozenset(row["id" if domain == "train" else "name"] for row in self._db.query(domain, constraints))
        limits = {slot: _minutes(constraints.pop(slot)) for slot in _TIME_SLOTS if slot in constraints}
        if None in limits.values():
            return frozenset()  # an unreadable time matched nothing there
        found = set()
        for row in self._db.query(domain, constraints):
            leave, arrive = _minutes(row["leave"]), _minutes(row["arrive"])
            if "leave" in limits and leave is not None and limits["leave"] < leave:
                continue
            if "arrive" in limits and arrive is not None and limits["arrive"] > arrive:
                continue
            found.add(row["id"])
        return frozenset(found)

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>", db_state: DbState = "gold") -> LegacyResult:
        turn_counts = {d: len(dialogue.turns) for d, dialogue in self.dialogues.items()}
        coverage = check_coverage(predictions, turn_counts, source)
        informed = succeeded = 0
        pairs = []
        for dialogue_id, turns in predictions.items():
            dialogue = self.dialogues[dialogue_id]
            pairs += [(normalize_text(t.response), ref.system_delex) for t, ref in zip(turns, dialogue.turns)]
            if db_state == "generated":
                states = [t.state or {} for t in turns]
            else:
                states = [ref.belief_state for ref in dialogue.turns]
            inform, success = self._dialogue(self.goals[dialogue_id], dialogue, [t.response for t in turns], states)
            informed += inform
            succeeded += success
        count = max(len(predictions), 1)
        return LegacyResult(
            inform=100 * informed / count,
            success=100 * succeeded / count,
            bleu=legacy_bleu(pairs),
            coverage=coverage,
            db_state=db_state,
            inverted_train_times=self.inverted_train_times,
        )

    def _dialogue(
        self, goal: Mapping[str, DomainGoal], dialogue: Dialogue, responses: Sequence[str], states: Sequence[BeliefState]
    ) -> tuple[bool, bool]:
        offered: dict[str, frozenset[str]] = {d: frozenset() for d in goal}
        provided: dict[str, set[str]] = {d: set() for d in goal}
        for index in range(1, len(responses)):  # the first turn is skipped there
            response, reference = normalize_response(responses[index]), dialogue.turns[index]
            for domain in goal:
                if domain not in reference.active_domains:
                    continue
                if ("NAME" in response or "TRAINID" in response) and domain in SEARCHABLE_DOMAINS:
                    state = states[index].get(domain)
                    found = self.venues(domain, state) if state else frozenset()
                    if found and (not offered[domain] or not found <= offered[domain]):
                        offered[domain] = found
                for request in ("PHONE", "ADDRESS", "POST", "TRAINID"):
                    if request in response:
                        provided[domain].add(request)
                if "REFERENCE" in response and reference.booked_domains:
                    provided[domain].add("REFERENCE")
        inform = True
        for domain, part in goal.items():
            if "name" in part.informable or domain in ALWAYS_MATCHED:
                continue
            if domain == "train" and not offered[domain] and "TRAINID" not in part.requests:
                continue
            inform &= bool(offered[domain] & self.venues(domain, part.informable))
        success = inform and all(part.requests <= provided[domain] for domain, part in goal.items())
        return inform, success
