"""Belief states as UBAR's evaluator reads them: its slot names, cleaned values, and its belief-span reader.

UBAR keeps states as belief-span text ("[restaurant] food indian area north")
and reads them back with a parser that takes the words of slot names for
slot names wherever they stand, so a state is written as that text and read
back before any database look-up, gold and generated alike.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache

from todrl.data.normalize import DOMAINS, state_slot_name
from todrl.evaluate.legacy_text import clean_value

UbarState = dict[str, dict[str, str]]
"""domain -> UBAR's slot name -> cleaned value."""

STATE_SLOT_WORDS = frozenset({
    "car", "address", "postcode", "phone", "internet", "parking", "type", "pricerange", "food", "stars", "area",
    "reference", "time", "leave", "price", "arrive", "id", "stay", "day", "people", "name", "destination",
    "departure", "department",
})  # fmt: skip
"""Words UBAR's belief-span reader takes for slot names wherever they stand, inside values too."""

def ubar_slot(slot: str) -> str:
    """Any common spelling of a slot -> UBAR's: todrl's state names (``leave at`` -> ``leave``; ``bookday`` ->
    ``day``), and a train's ``trainID`` -> ``id``."""
    name = state_slot_name(slot)
    return "id" if name == "trainid" else name


def clean_state(state: Mapping[str, Mapping[str, str]], keep: Callable[[str, str, str], bool] = lambda *_: False) -> UbarState:
    """Slot names as UBAR's, values through `clean_value` unless ``keep(domain, slot, value)``; empty values dropped.

    ``keep`` spares values already in UBAR's spelling: cleaning twice is not always cleaning once
    ("restaurant two two" -> "restaurant 2 two" -> "restaurant 2 2").
    """
    cleaned: UbarState = {}
    for domain, slots in state.items():
        for slot, value in slots.items():
            slot = ubar_slot(slot)
            if value := value if keep(domain, slot, value) else clean_value(domain, slot, value):
                cleaned.setdefault(domain.lower(), {})[slot] = value
    return cleaned


def reparse(state: UbarState) -> UbarState:
    """A cleaned state written as UBAR's belief span and read back, as its evaluator reads every state.

    Reading back is where a value holding a slot word breaks: "whale of a time" becomes a name "whale of a",
    "people 's portraits ..." loses its name (UBAR's reader skips "people" only when "'s" follows).
    The result is cached and shared: read it, do not change it.
    """
    return _reparse(tuple((domain, tuple(slots.items())) for domain, slots in state.items()))


@lru_cache(maxsize=100_000)
def _reparse(state: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]) -> UbarState:
    tokens: list[str] = []
    for domain, slots in state:
        if slots:
            tokens.append(f"[{domain}]")
            for slot, value in slots:
                tokens += [slot, *value.split()]
    return read_belief_span(tokens)


def read_belief_span(tokens: Sequence[str]) -> UbarState:
    """UBAR's ``bspan_to_constraint_dict``: ``[domain] slot value words ...`` -> domain -> slot -> value."""
    state: UbarState = {}
    domain = None
    for index, token in enumerate(tokens):
        if "[" in token:
            domain = token[1:-1] if token[1:-1] in DOMAINS else domain
            continue
        if token not in STATE_SLOT_WORDS or domain is None:
            continue
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if token == "people" and following in (None, "'s"):
            continue
        slots = state.setdefault(domain, {})
        if following is None:
            break
        words = list(itertools.takewhile(lambda word: "[" not in word and word not in STATE_SLOT_WORDS, tokens[index + 1 :]))
        if words:
            slots[token] = " ".join(words)
    return state
