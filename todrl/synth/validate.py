"""Deterministic checks of flows and turns. Each returns the reasons it fails (empty: it passes); the reasons are
the keys of the acceptance statistics, so a dropped dialogue is always counted under what went wrong."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from todrl.data.db import DB_DOMAINS, MultiWozDB
from todrl.data.normalize import ACTS, INFORMABLE_SLOTS, REQUESTABLE_SLOTS, normalize_text, normalize_value
from todrl.data.records import BeliefState, Turn
from todrl.lexicalize import PLACEHOLDER, fill
from todrl.synth.flow import INTENTIONS, Reply, Step, updated_state
from todrl.synth.scenario import Ontology
from todrl.synth.templates import LEXICAL_SLOTS

T = TypeVar("T")

REASONS: dict[str, str] = {
    "malformed": "the LLM's answer could not be read (no JSON, wrong fields)",
    "slot_not_in_schema": "a slot, intention or act outside the MultiWOZ schema",
    "value_not_in_ontology": "a value neither in the database nor in the schema, once normalized as the readers do",
    "unsatisfiable": "no database row meets a domain's constraints",
    "state_not_from_flow": "the state lost a slot or changed one the flow did not change",
    "request_unanswered": "a requested slot the system's act does not inform",
    "value_not_in_utterance": "the user's words miss a slot-value the flow introduces",
    "delex_round_trip": "the delexicalized reply does not hold exactly the act's placeholders, or filling and "
                        "re-delexicalizing it does not give it back",
}
"""Every failure reason, with what it means (printed beside the counts)."""

class MalformedAnswer(ValueError):
    """An LLM's answer is not in the asked-for form (counted as the reason "malformed")."""


def first_valid(retries: int, failures: Counter[str], attempt: Callable[[int], tuple[T, list[str]]]) -> tuple[T | None, list[str]]:
    """Up to `retries` + 1 attempts, each giving a value and the validators' reasons against it (an answer not in the
    asked-for form is "malformed"); every reason is counted in `failures`. The first value without reasons, else None
    and the last attempt's reasons, the one the dialogue is dropped for."""
    reasons: list[str] = []
    for number in range(retries + 1):
        try:
            value, reasons = attempt(number)
        except MalformedAnswer:
            value, reasons = None, ["malformed"]
        failures.update(reasons)
        if not reasons:
            return value, reasons
    return None, reasons


_BOOLEAN = frozenset({"parking", "internet"})


def check_flow(steps: list[Step], ontology: Ontology, db: MultiWozDB) -> list[str]:
    """Schema slots, ontology values, and a database row for every domain's final constraints."""
    reasons: list[str] = []
    state: BeliefState = {}
    for step in steps:
        known = step.intention in INTENTIONS and (step.domain in INFORMABLE_SLOTS or step.domain == "general")
        if not known or any(s not in INFORMABLE_SLOTS.get(step.domain, ()) for s in step.slot_values) \
                or any(s not in REQUESTABLE_SLOTS for s in step.requests):
            reasons.append("slot_not_in_schema")
            continue
        if any(normalize_value(s, v) != v or not ontology.allows(step.domain, s, v) for s, v in step.slot_values.items()):
            reasons.append("value_not_in_ontology")
        state = updated_state(state, step)
    if not reasons and any(db.count(d, c) == 0 for d, c in state.items() if d in DB_DOMAINS):
        reasons.append("unsatisfiable")
    return sorted(set(reasons))


def check_turn(turn: Turn, previous: BeliefState, steps: list[Step], reply: Reply) -> list[str]:
    """`steps`: what the user's words did (one step in a flow; one per domain whose state a simulated user changed)."""
    reasons = []
    expected = previous
    for step in steps:
        expected = updated_state(expected, step)
    if turn.belief_state != expected or any(
            s not in turn.belief_state.get(d, {}) for d, slots in previous.items() for s in slots):
        reasons.append("state_not_from_flow")
    if any(name not in ACTS for acts in turn.dialogue_act.values() for name in acts):
        reasons.append("slot_not_in_schema")
    informed = {s for acts in turn.dialogue_act.values() for s in acts.get("inform", [])}
    if any(s not in informed for slots in turn.requested_slots.values() for s in slots):
        reasons.append("request_unanswered")
    words = f" {turn.user} "
    if any(f" {normalize_text(v)} " not in words for step in steps for s, v in step.slot_values.items()
           if s not in _BOOLEAN):
        reasons.append("value_not_in_utterance")
    if not round_trips(turn.system_delex, turn.system, reply):
        reasons.append("delex_round_trip")
    return reasons


def expected_placeholders(reply: Reply) -> Counter[str]:
    """The slot of one ``[value_<slot>]`` per slot the act gives a value for (requests and lexical slots give none)."""
    return Counter(s for acts in reply.act.values() for name, slots in acts.items()
                   if name != "request" for s in slots if s not in LEXICAL_SLOTS)


def lexicalize(delex: str, reply: Reply) -> str:
    return fill(delex, lambda slot, _: reply.values.get(slot))[0]


def round_trips(delex: str, lexical: str, reply: Reply) -> bool:
    """The reply holds exactly the act's placeholders, and replacing the act's values in the lexical text (longest
    first, whole words) gives the delexicalized text back."""
    if Counter(PLACEHOLDER.findall(delex)) != expected_placeholders(reply):
        return False
    text = f" {lexical} "
    for slot, value in sorted(reply.values.items(), key=lambda item: -len(item[1])):
        if slot in LEXICAL_SLOTS:
            continue
        text = re.sub(rf"(?<= ){re.escape(normalize_text(value))}(?= )", f"[value_{slot}]", text)
    return text.strip() == delex
