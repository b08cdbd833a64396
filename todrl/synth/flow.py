"""Logic flows (seed 003, Sec. 3.2.2): per user turn an intention, the slot-values it introduces, the slots it asks
for and a short rationale; and the system's act that answers it, chosen by rules from the flow and the database.

The flow is the only source of labels: a turn's belief state is the previous one updated with the step's
slot-values, its requested slots are the step's requests, its act comes from `system_act`. A realizer, template or
LLM, only puts words on them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Literal

from todrl.data.db import DB_DOMAINS, MultiWozDB
from todrl.data.records import BeliefState, DialogueAct
from todrl.data.normalize import ACTS
from todrl.synth.scenario import Scenario, entity_value

Intention = Literal["inform", "update", "request", "book", "bye"]
INTENTIONS: tuple[str, ...] = ("inform", "update", "request", "book", "bye")


@dataclass
class Step:
    """One user turn of the flow."""

    intention: Intention
    domain: str
    """"general" for the closing turn."""
    slot_values: dict[str, str] = field(default_factory=dict)
    """Belief-state values this turn introduces (or, for "update", changes) in `domain`."""
    requests: list[str] = field(default_factory=list)
    rationale: str = ""


@dataclass
class Reply:
    """The system's side of a turn: its act and the value behind each slot the act names."""

    act: DialogueAct
    values: dict[str, str]


def rule_flow(scenario: Scenario, rng: random.Random) -> list[Step]:
    """The baseline flow: each domain's constraints in chunks (bigger chunks at low levels), its requests, its
    booking; at level 3, one booking day first stated wrong and then updated; a closing turn."""
    steps: list[Step] = []
    for domain, goal in scenario.goal.items():
        pairs = list(goal.informable.items())
        rng.shuffle(pairs)
        first = True
        while pairs:
            size = min(len(pairs), rng.randint(1, 4 - min(scenario.level, 2)))
            chunk, pairs = dict(pairs[:size]), pairs[size:]
            why = (f"opens the {domain} search with {', '.join(chunk)}" if first else
                   f"narrows the {domain} search with {', '.join(chunk)}")
            steps.append(Step("inform", domain, chunk, rationale=f"the user {why}, as the goal says"))
            first = False
        if goal.book:
            book = dict(goal.book)
            if scenario.level >= 3 and "day" in book and rng.random() < 0.5:
                wrong = rng.choice([d for d in ("monday", "tuesday", "friday", "sunday") if d != book["day"]])
                steps.append(Step("book", domain, {**book, "day": wrong},
                                  rationale=f"the user books the {domain} but names the wrong day"))
                steps.append(Step("update", domain, {"day": book["day"]},
                                  rationale=f"the user corrects the {domain} booking day to {book['day']}"))
            else:
                steps.append(Step("book", domain, book, rationale=f"the user books the {domain} for {', '.join(book)}"))
        if goal.requestable:
            steps.append(Step("request", domain, requests=list(goal.requestable),
                              rationale=f"the user asks for the {domain}'s {', '.join(goal.requestable)}"))
    steps.append(Step("bye", "general", rationale="every goal is met: the user thanks and leaves"))
    return steps


def updated_state(state: BeliefState, step: Step) -> BeliefState:
    """The belief state after `step`: its slot-values added (new slots appended, changed ones in place)."""
    new = {domain: dict(slots) for domain, slots in state.items()}
    if step.slot_values:
        new.setdefault(step.domain, {}).update(step.slot_values)
    return new


def system_act(step: Step, following: Step | None, state: BeliefState, entities: dict[str, dict[str, str]],
               db: MultiWozDB) -> Reply:
    """What the system answers: the number of matches and a question for the slot the user will give next, an offer
    once the search is complete, the requested values, a booking reference, or goodbye."""
    domain, entity = step.domain, entities.get(step.domain, {})
    values: dict[str, str] = {}
    act: DialogueAct = {}
    if step.intention == "bye":
        return Reply({"general": {"bye": []}}, {})
    if step.intention in ("book", "update") and following is not None and following.intention == "update" \
            and following.domain == domain:
        act = {domain: {"request": ["day"]}}  # the user is about to correct it: the system confirms the day
    elif step.intention in ("book", "update"):
        act = {domain: {"offerbooked": ["reference"]}} if domain != "taxi" else {domain: {"inform": ["car", "phone"]}}
    elif step.intention == "request":
        act = {domain: {"inform": list(step.requests)}}
    else:
        more = following is not None and following.domain == domain and following.intention == "inform"
        if more:
            slot = next(iter(following.slot_values))
            act = {domain: {"inform": ["choice"], "request": [slot]}} if domain in DB_DOMAINS else {domain: {"request": [slot]}}
            values["choice"] = str(db.count(domain, state[domain]))
        elif domain == "taxi":
            act = {domain: {"inform": ["car", "phone"]}}
        elif domain == "train":
            act = {domain: {"inform": ["id", "leave"]}}
        else:
            act = {domain: {"recommend": ["name"]}}
        if not more and following is not None and following.domain == domain and following.intention == "book":
            act[domain]["offerbook"] = []
    for slots in act.values():
        for slot in (s for part in slots.values() for s in part):
            if slot not in values:
                value = entity_value(domain, entity, slot)
                if value is not None:
                    values[slot] = value
    if step.intention in ("request", "book", "update"):
        act["general"] = {"reqmore": []}
    return Reply({d: {a: act[d][a] for a in sorted(act[d], key=ACTS.index)} for d in act}, values)
