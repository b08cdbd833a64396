"""The standard MultiWOZ evaluator (Nekvinda & Dušek 2021): Inform, Success, sacreBLEU, lexical richness.

Inform asks whether every venue the system offered fits the user's goal;
Success asks, on top, whether it gave every requested attribute.  A venue
counts as offered only when a response mentions a name or train-id
placeholder in a turn about that domain, and the offered venues are the
database matches of the belief state at that turn (the system's own state if
it predicts one, else the gold state).  Requested attributes count only when
their placeholder appears in a turn about the domain; a reference number only
once the booking was actually made.  Every choice below follows the published
evaluator, so the published systems' numbers reproduce (see docs/evaluators.md).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz
from todrl.data.normalize import DONTCARE
from todrl.data.records import BeliefState, Dialogue, Goal
from todrl.evaluate.bleu import ReferenceBleu
from todrl.evaluate.lexical import Richness, richness
from todrl.evaluate.normalization import normalize_response, normalize_state
from todrl.evaluate.predictions import Coverage, Predictions, check_coverage
from todrl.evaluate.venues import VenueMatcher

VENUE_DOMAINS = ("restaurant", "hotel", "attraction")
SEARCHABLE_DOMAINS = VENUE_DOMAINS + ("train",)
ALWAYS_MATCHED = ("taxi", "police", "hospital")
"""Domains without venues to choose: Inform holds by definition."""

GOAL_REQUESTS = {"phone": "PHONE", "address": "ADDRESS", "postcode": "POST", "reference": "REFERENCE", "id": "TRAINID"}
"""Requests Success checks (those a delexicalized response can provide) -> their placeholder class."""
TRAIN_REQUESTS = ("REFERENCE", "TRAINID")

VenueQuery = Callable[[str, Mapping[str, str]], frozenset[str]]
"""(domain, normalized constraints) -> ids of the matching venues or trains."""


@dataclass(frozen=True)
class DomainGoal:
    informable: dict[str, str]
    requests: frozenset[str]
    """Placeholder classes the system must provide (subset of GOAL_REQUESTS' values)."""


@dataclass
class ReferenceDialogue:
    """What scoring needs of one gold dialogue, normalized once."""

    goal: dict[str, DomainGoal]
    states: list[BeliefState]
    booked: list[frozenset[str]]
    responses: list[str]


@dataclass
class DialogueView:
    """One predicted dialogue as Inform and Success see it."""

    dialogue_id: str
    reference: ReferenceDialogue
    responses: list[str]
    states: list[BeliefState]
    domains: list[list[str]]


@dataclass
class StandardResult:
    inform: dict[str, float]
    success: dict[str, float]
    bleu: float | None
    richness: Richness | None
    coverage: Coverage
    gold_states: bool = False
    """True when the predictions had no states and the gold ones were used."""
    estimated_domains: bool = False
    """True when active domains were estimated from state changes."""
    warnings: list[str] = field(default_factory=list)

    @property
    def combined(self) -> float | None:
        """(Inform + Success) / 2 + BLEU."""
        if self.bleu is None or "total" not in self.inform:
            return None
        return (self.inform["total"] + self.success["total"]) / 2 + self.bleu

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["combined"] = self.combined
        return result


def evaluation_goal(goal: Mapping[str, Goal]) -> dict[str, DomainGoal]:
    """Reader goal -> what Inform/Success check: trains need only an id if asked and a reference if booked."""
    converted = {}
    for domain, part in goal.items():
        requests = {GOAL_REQUESTS[slot] for slot in part.requestable if slot in GOAL_REQUESTS}
        if part.book:
            requests.add("REFERENCE")
        if domain == "train":
            requests &= set(TRAIN_REQUESTS)
        informable = {slot: value for slot, value in part.informable.items() if value != DONTCARE}
        converted[domain] = DomainGoal(normalize_state({domain: informable})[domain], frozenset(requests))
    return converted


def standard_gold_state(state: BeliefState) -> BeliefState:
    """The gold state as the standard evaluator holds it: no "dontcare" slots, no empty domains."""
    kept = {domain: {s: v for s, v in slots.items() if v != DONTCARE} for domain, slots in state.items()}
    return normalize_state({domain: slots for domain, slots in kept.items() if slots})


def reference_dialogue(dialogue: Dialogue) -> ReferenceDialogue:
    return ReferenceDialogue(
        goal=evaluation_goal(dialogue.goal),
        states=[standard_gold_state(turn.belief_state) for turn in dialogue.turns],
        booked=[frozenset(turn.booked_domains) for turn in dialogue.turns],
        responses=[normalize_response(turn.system_delex) for turn in dialogue.turns],
    )


def estimate_active_domains(states: Sequence[BeliefState]) -> list[list[str]]:
    """Per turn, the domain the system most likely talks about: the one whose state just changed.

    Several changed domains: keep the current one if it is among them, else take the
    one with most slots; nothing changed: stay, or switch to another domain that
    changed together with the current one a turn before.
    """
    current: str | None = None
    previous: BeliefState = {}
    previous_changed: list[str] = []
    estimates: list[list[str]] = []
    for state in states:
        changed = [d for d in state if set(state[d].items()) - set(previous.get(d, {}).items())]
        if not changed:
            if current is None:
                estimates.append([])
                continue
            if len(previous_changed) > 1:
                previous_changed = [d for d in previous_changed if d in state and d != current]
                if previous_changed:
                    current = previous_changed[0]
        elif current not in changed:
            current = max(changed, key=lambda d: len(state[d]))
        previous, previous_changed = state, changed
        estimates.append([current] if current is not None else [])
    return estimates


def dialogue_inform_success(
    goal: Mapping[str, DomainGoal],
    responses: Sequence[str],
    states: Sequence[BeliefState],
    domains: Sequence[Sequence[str]],
    booked: Sequence[frozenset[str]],
    venues: VenueQuery,
) -> tuple[dict[str, bool], dict[str, bool]]:
    """Inform and Success of one dialogue, per goal domain and "total" (Success only when Inform holds)."""
    offered: dict[str, frozenset[str] | None] = {d: frozenset() for d in goal}
    provided: dict[str, set[str]] = {d: set() for d in goal}
    for response, state, turn_domains, turn_booked in zip(responses, states, domains, booked):
        for domain in goal:
            if domain not in turn_domains:
                continue
            if ("NAME" in response and domain in VENUE_DOMAINS) or ("TRAINID" in response and domain == "train"):
                matching = venues(domain, state[domain]) if domain in state else frozenset()
                if not offered[domain] or not offered[domain] <= matching:
                    offered[domain] = matching  # only the latest offer counts
            for request in GOAL_REQUESTS.values():
                if request in response and (request != "REFERENCE" or domain in turn_booked):
                    provided[domain].add(request)
    for domain, part in goal.items():
        train_not_needed = domain == "train" and not offered[domain] and "TRAINID" not in part.requests
        if "name" in part.informable or domain in ALWAYS_MATCHED or train_not_needed:
            offered[domain] = None  # matched by definition
    inform = {}
    for domain, part in goal.items():
        shown = offered[domain]
        inform[domain] = shown is None or (
            domain in SEARCHABLE_DOMAINS and bool(shown) and shown <= venues(domain, part.informable)
        )
    inform["total"] = all(inform.values())
    success: dict[str, bool] = {}
    if inform["total"]:
        success = {domain: part.requests <= provided[domain] for domain, part in goal.items()}
        success["total"] = all(success.values())
    return inform, success


def missing_fields(predictions: Predictions) -> tuple[bool, bool]:
    """(some turn has no state, some turn has no active domains): then every dialogue is scored with the gold
    states, or with domains estimated from the states."""
    turns = [t for dialogue in predictions.values() for t in dialogue]
    return any(t.state is None for t in turns), any(t.active_domains is None for t in turns)


class StandardEvaluator:
    """Scores prediction files against one MultiWOZ split; gold data is prepared once and reused."""

    def __init__(self, dialogues: Sequence[Dialogue], db: MultiWozDB) -> None:
        self.references = {dialogue.id: reference_dialogue(dialogue) for dialogue in dialogues}
        self.venues = VenueMatcher(db)
        self._bleu = ReferenceBleu(
            {(d, i): text for d, ref in self.references.items() for i, text in enumerate(ref.responses)}
        )
        for reference in self.references.values():  # goal look-ups are the same for every predictions file
            for domain, part in reference.goal.items():
                if domain in SEARCHABLE_DOMAINS:
                    self.venues(domain, part.informable)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, split: str = "test") -> StandardEvaluator:
        data_dir = Path(data_dir)
        return cls(load_multiwoz(data_dir, split), MultiWozDB(data_dir / "db"))

    @property
    def turn_counts(self) -> dict[str, int]:
        return {d: len(ref.responses) for d, ref in self.references.items()}

    def evaluate(
        self,
        predictions: Predictions,
        source: str | Path = "<predictions>",
        bleu: bool = True,
        success: bool = True,
        lexical: bool = True,
    ) -> StandardResult:
        coverage = check_coverage(predictions, self.turn_counts, source)
        responses = {d: [normalize_response(t.response) for t in turns] for d, turns in predictions.items()}
        result = StandardResult(inform={}, success={}, bleu=None, richness=None, coverage=coverage)
        if bleu:
            result.bleu = self._bleu.score(((d, i), text) for d, texts in responses.items() for i, text in enumerate(texts))
        if lexical:
            result.richness = richness(text for texts in responses.values() for text in texts)
        if success:
            self._inform_success(predictions, responses, result)
        return result

    def dialogue_views(self, predictions: Predictions, responses: dict[str, list[str]] | None = None) -> Iterator[DialogueView]:
        """Per predicted dialogue, what Inform and Success read: its normalized responses, its states (the gold ones
        if any predicted turn lacks a state) and each turn's domains (estimated from the states if any turn lacks
        them)."""
        gold_states, estimated = missing_fields(predictions)
        for dialogue_id, dialogue in predictions.items():
            reference = self.references[dialogue_id]
            if gold_states:
                states = reference.states[: len(dialogue)]
            else:
                states = [normalize_state(t.state or {}) for t in dialogue]
            domains = estimate_active_domains(states) if estimated else [t.active_domains or [] for t in dialogue]
            texts = responses[dialogue_id] if responses else [normalize_response(t.response) for t in dialogue]
            yield DialogueView(dialogue_id, reference, texts, states, domains)

    def _inform_success(self, predictions: Predictions, responses: dict[str, list[str]], result: StandardResult) -> None:
        result.gold_states, result.estimated_domains = missing_fields(predictions)
        if result.gold_states:
            result.warnings.append("predictions carry no (or incomplete) states: gold MultiWOZ 2.1 states used")
        totals: Counter[str] = Counter()
        informed: Counter[str] = Counter()
        succeeded: Counter[str] = Counter()
        for view in self.dialogue_views(predictions, responses):
            inform, success = dialogue_inform_success(
                view.reference.goal, view.responses, view.states, view.domains, view.reference.booked, self.venues
            )
            for domain in inform.keys() | success.keys():
                totals[domain] += 1
                informed[domain] += inform.get(domain, False)
                succeeded[domain] += success.get(domain, False)
        result.inform = {d: round(100 * informed[d] / totals[d], 1) for d in sorted(totals)}
        result.success = {d: round(100 * succeeded[d] / totals[d], 1) for d in sorted(totals)}
