"""Typed records shared by every corpus reader.

Readers turn raw files into these, and everything downstream (text format,
rewards targets, evaluators) reads only these, so a new corpus needs a
reader and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BeliefState = dict[str, dict[str, str]]
"""domain -> slot -> value, in the order the slots were first mentioned."""

DialogueAct = dict[str, dict[str, list[str]]]
"""domain -> act -> slots, e.g. {"restaurant": {"inform": ["phone"]}, "general": {"reqmore": []}}."""


@dataclass
class Goal:
    """What the user wants from one domain: constraints, requests, bookings."""

    informable: dict[str, str] = field(default_factory=dict)
    requestable: list[str] = field(default_factory=list)
    book: dict[str, str] = field(default_factory=dict)


@dataclass
class Turn:
    """One user utterance and the system reply to it, with annotations."""

    user: str
    system: str
    system_delex: str
    belief_state: BeliefState
    """State after the user utterance (what the system reply is conditioned on)."""
    dialogue_act: DialogueAct
    """System act of this turn; empty for corpora without acts (In-Car)."""
    requested_slots: dict[str, list[str]] = field(default_factory=dict)
    """Slots the user asked for in this turn, per domain (the Sgt of the generation reward)."""
    active_domains: list[str] = field(default_factory=list)
    booked_domains: list[str] = field(default_factory=list)


@dataclass
class UserIntent:
    """A user turn as a logic flow plans it (seed 003): what the user means, the slot-values it introduces, and why.

    The first stage of step-by-step state tracking (`todrl.cot`) learns to write it before the state.
    """

    intention: str
    """inform, update, request, book, bye (synthetic flows); real corpora's derived ones add chat."""
    slot_values: BeliefState = field(default_factory=dict)
    """domain -> slot -> value the turn introduces or changes."""
    rationale: str = ""


@dataclass
class Dialogue:
    id: str
    goal: dict[str, Goal]
    turns: list[Turn]
    dataset: str = ""
    """Corpus name ("multiwoz21", "incar", "sgd")."""
    services: list[str] = field(default_factory=list)
    """Service or domain names, used to split results per service (SGD)."""
    intents: list[UserIntent] = field(default_factory=list)
    """One per turn where the corpus records its logic flow (synthetic corpora); empty elsewhere."""
