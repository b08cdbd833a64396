"""What a turn's generation is scored against, built from plain data.

Callers hold turns as `todrl` records, dataset rows or JSON; the rewards need
only two things from them, so this is all they have to build.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rewards.lexer import SPACE, units
from rewards.spans import response_slots


def normalize_value(value: str) -> str:
    """The form in which predicted and gold values are compared (lexer words, lower case)."""
    return " ".join(text for kind, text in units(value) if kind != SPACE).lower()


@dataclass(frozen=True)
class Gold:
    """Gold belief state and requested slots of one turn.

    ``requested`` takes ``Turn.requested_slots`` ({domain: [slots]}) or bare
    slot names; either way the slots are compared by name only, because the
    response placeholders that satisfy a request carry no domain.

    ``offered`` are slots the gold system gives unasked that the task still
    needs, such as the name of the venue it proposes: Inform counts a venue
    only once a response names it, and users seldom ask for the name. Rg
    scores them like requested slots; empty (the default) is Eq. 3 as printed.
    """

    belief_state: Mapping[str, Mapping[str, str]]
    requested: frozenset[str] | Mapping[str, Iterable[str]] | Iterable[str] = frozenset()
    where: str = ""
    """Names the record in error messages, e.g. "SNG0073 turn 2"."""
    offered: frozenset[str] | Iterable[str] = frozenset()
    pairs: dict[tuple[str, str], str] = field(init=False, repr=False, compare=False)
    """(domain, slot) -> normalized value; pairs whose value is empty are left out."""
    expected: frozenset[str] = field(init=False, repr=False, compare=False)
    """Sgt of Eq. 3: the requested and the offered slots."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "pairs", self._pairs())
        object.__setattr__(self, "requested", self._requested())
        object.__setattr__(self, "offered", frozenset(_names(self.offered, self, "offered slots")))
        object.__setattr__(self, "expected", self.requested | self.offered)

    @classmethod
    def from_turn(cls, turn: Any, where: str = "") -> Gold:
        """From a `Turn`, or a mapping with "belief_state" and "requested_slots" (dicts or JSON strings), and
        optionally "offered_slots" (a list or a JSON list)."""
        if isinstance(turn, Mapping):
            missing = {"belief_state", "requested_slots"} - turn.keys()
            if missing:
                raise ValueError(f"{where or 'turn'}: missing {sorted(missing)}; got keys {sorted(turn)}")
            state, requested, offered = turn["belief_state"], turn["requested_slots"], turn.get("offered_slots", ())
        else:
            state, requested = turn.belief_state, turn.requested_slots
            offered = getattr(turn, "offered_slots", ())
        return cls(_decoded(state, "belief_state", where), _decoded(requested, "requested_slots", where), where,
                   _decoded(offered, "offered_slots", where))

    def _fail(self, problem: str) -> ValueError:
        return ValueError(f"{self.where or 'gold'}: {problem}")

    def _pairs(self) -> dict[tuple[str, str], str]:
        if not isinstance(self.belief_state, Mapping):
            raise self._fail(f"belief_state must map domain -> {{slot: value}}, got {type(self.belief_state).__name__}")
        pairs: dict[tuple[str, str], str] = {}
        for domain, slots in self.belief_state.items():
            if not isinstance(slots, Mapping):
                raise self._fail(f"belief_state[{domain!r}] must map slot -> value, got {type(slots).__name__}")
            for slot, value in slots.items():
                if not isinstance(value, str):
                    raise self._fail(f"belief_state[{domain!r}][{slot!r}] must be a string, got {value!r}")
                if normalized := normalize_value(value):
                    pairs[(domain, slot)] = normalized
        return pairs

    def _requested(self) -> frozenset[str]:
        requested = self.requested
        if isinstance(requested, str):
            raise self._fail(f"requested must be slot names or {{domain: [slots]}}, got the string {requested!r}")
        if isinstance(requested, Mapping):
            requested = [slot for slots in requested.values() for slot in _names(slots, self)]
        return frozenset(_names(requested, self))


def _names(slots: Any, gold: Gold, what: str = "requested slots") -> list[str]:
    names = list(slots) if isinstance(slots, Iterable) and not isinstance(slots, str) else None
    if names is None or not all(isinstance(name, str) for name in names):
        raise gold._fail(f"{what} must be a list of names, got {slots!r}")
    return names


def _decoded(value: Any, name: str, where: str) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where or 'turn'}: {name} is not valid JSON ({error}): {value[:80]!r}") from None


def offered_in(offer_slots: Iterable[str], gold_response: str) -> frozenset[str]:
    """`Gold.offered` of a turn: the `offer_slots` its gold response (or whole target) gives as placeholders."""
    return frozenset(offer_slots) & response_slots(gold_response)
