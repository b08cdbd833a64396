"""One synthetic dialogue from scenario to validated, labelled turns, or the reason it was dropped.

Each dialogue draws from its own `random.Random(f"{seed}:{index}")`, so a resumed run makes the same dialogues as
an uninterrupted one, whatever finished before. A flow that fails validation is planned again, a turn that fails
is realized again, each up to `retries` times; then the dialogue is dropped under the reason of its last failure.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from todrl.data.db import DB_DOMAINS, MultiWozDB
from todrl.data.normalize import normalize_text
from todrl.data.records import BeliefState, Turn
from todrl.lexicalize import BOOKABLE, booking_reference
from todrl.synth.flow import Reply, Step, rule_flow, system_act, updated_state
from todrl.synth.scenario import Ontology, Scenario, ScenarioSampler
from todrl.synth.templates import system_text, user_text
from todrl.synth.validate import check_flow, check_turn, first_valid, lexicalize

PROMPT_VERSION = "synth-v1"
"""Bumped whenever a prompt or template changes what is generated; stored in every record's provenance."""


@dataclass
class Context:
    """What a planner or realizer may look at for the turn it writes."""

    scenario: Scenario
    dialogue: int
    """The dialogue's index (what mutation schedules key on)."""
    steps: list[Step]
    index: int
    history: list[Turn]
    rng: random.Random
    attempt: int

    @property
    def step(self) -> Step:
        return self.steps[self.index]


class Planner(Protocol):
    name: str

    def plan(self, scenario: Scenario, index: int, rng: random.Random, attempt: int) -> list[Step]: ...


class Realizer(Protocol):
    name: str

    def user(self, context: Context) -> str: ...

    def system(self, context: Context, reply: Reply) -> str:
        """The delexicalized reply."""


@dataclass
class RulePlanner:
    name: str = "rules"

    def plan(self, scenario: Scenario, index: int, rng: random.Random, attempt: int) -> list[Step]:
        return rule_flow(scenario, rng)


@dataclass
class TemplateRealizer:
    name: str = "templates"

    def user(self, context: Context) -> str:
        step = context.step
        opens = next(i for i, s in enumerate(context.steps) if s.domain == step.domain) == context.index
        return user_text(step, opens, context.rng)

    def system(self, context: Context, reply: Reply) -> str:
        return system_text(reply.act, reply.values, context.rng)


@dataclass
class Composer:
    db: MultiWozDB
    ontology: Ontology
    planner: Planner
    realizer: Realizer
    retries: int = 3
    model: str | None = None
    levels: tuple[int, ...] = (1, 2, 3)
    sampler: ScenarioSampler = field(init=False)

    def __post_init__(self) -> None:
        self.sampler = ScenarioSampler(self.db, self.ontology)

    def provenance(self) -> dict[str, Any]:
        return {"planner": self.planner.name, "realizer": self.realizer.name, "model": self.model,
                "prompt_version": PROMPT_VERSION, "retries": self.retries}

    def compose(self, dialogue_id: str, seed: int, index: int) -> dict[str, Any]:
        """The JSON record of one dialogue: accepted (with "turns") or rejected (with "reason")."""
        rng = random.Random(f"{seed}:{index}")
        level = self.levels[index % len(self.levels)]
        scenario = self.sampler.sample(level, rng)
        failures: Counter[str] = Counter()
        record = {"id": dialogue_id, "level": level, "scenario": _scenario_json(scenario),
                  "provenance": self.provenance()}

        def planned(attempt: int) -> tuple[list[Step], list[str]]:
            steps = self.planner.plan(scenario, index, rng, attempt)
            return steps, check_flow(steps, self.ontology, self.db)

        steps, reasons = first_valid(self.retries, failures, planned)
        if reasons:
            return record | {"reason": reasons[0], "failures": dict(failures)}
        entities = self._entities(scenario, steps)
        turns: list[dict[str, Any]] = []
        history: list[Turn] = []
        state: BeliefState = {}
        booked: list[str] = []
        for index_in_flow, step in enumerate(steps):
            following = steps[index_in_flow + 1] if index_in_flow + 1 < len(steps) else None
            new_state = updated_state(state, step)
            reply = system_act(step, following, new_state, entities, self.db)
            if step.intention == "book" or step.domain == "taxi" and "car" in reply.act.get("taxi", {}).get("inform", []):
                booked = list(dict.fromkeys([*booked, step.domain]))

            def realized(attempt: int) -> tuple[Turn, list[str]]:
                context = Context(scenario, index, steps, index_in_flow, history, rng, attempt)
                delex = normalize_text(self.realizer.system(context, reply))
                turn = Turn(user=normalize_text(self.realizer.user(context)), system=normalize_text(lexicalize(delex, reply)),
                            system_delex=delex, belief_state=new_state, dialogue_act=reply.act,
                            requested_slots={step.domain: list(step.requests)} if step.requests else {},
                            active_domains=[step.domain] if step.domain != "general" else [], booked_domains=list(booked))
                return turn, check_turn(turn, state, [step], reply)

            turn, reasons = first_valid(self.retries, failures, realized)
            if reasons:
                return record | {"reason": reasons[0], "failures": dict(failures), "turn": index_in_flow}
            history.append(turn)
            turns.append(asdict(turn) | {"flow": asdict(step)})
            state = new_state
        goal = {d: asdict(g) for d, g in scenario.goal.items()}
        return record | {"goal": goal, "turns": turns, "failures": dict(failures)}

    def _entities(self, scenario: Scenario, steps: list[Step]) -> dict[str, dict[str, str]]:
        """Per domain the row offered: the scenario's when it meets the flow's final constraints, else the first
        that does; bookable ones with a reference derived from the booking."""
        final: BeliefState = {}
        for step in steps:
            final = updated_state(final, step)
        entities = {}
        for domain, constraints in final.items():
            entity = dict(scenario.entities.get(domain, {}))
            if domain in DB_DOMAINS:
                rows = self.db.query(domain, constraints)
                key = "id" if domain == "train" else "name"
                if rows and not any(r.get(key) == entity.get(key) for r in rows):
                    entity = {k: v for k, v in rows[0].items() if isinstance(v, str)}
            if domain in BOOKABLE:
                entity["reference"] = booking_reference(domain, constraints).lower()
            entities[domain] = entity
        return entities


def _scenario_json(scenario: Scenario) -> dict[str, Any]:
    return {"level": scenario.level, "domains": scenario.domains, "slot_values": scenario.slot_values(),
            "description": scenario.description}
