"""Two LLMs talk (seed 001): a user with a goal sampled from the schema and database, and an agent that declares,
each turn, its belief state, its dialogue act and a delexicalized reply as JSON. The declared state is queried
against `MultiWozDB`, and the reply is filled from the row it selects; the user's words must hold every value the
state gains (the label is grounded in what was said), and the same validators as for planned dialogues apply.
A failing turn is asked again (user and agent) up to `retries` times, then the dialogue is dropped by reason.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from todrl.data.db import DB_DOMAINS, MultiWozDB
from todrl.data.normalize import INFORMABLE_SLOTS, normalize_text, normalize_value, state_slot_name
from todrl.data.records import BeliefState, DialogueAct, Turn
from todrl.lexicalize import BOOKABLE, booking_reference
from todrl.llm.client import ChatClient
from todrl.synth.compose import PROMPT_VERSION
from todrl.synth.flow import Reply, Step
from todrl.synth.llm import Sampling, ask, read_json
from todrl.synth.scenario import Ontology, ScenarioSampler, entity_value
from todrl.synth.validate import MalformedAnswer, check_flow, check_turn, first_valid, lexicalize

USER_SYSTEM = ("You are a customer of a Cambridge booking assistant. Pursue your goal one or two items a turn. "
               'Answer with JSON only: {"message": "...", "requests": {"domain": ["slot"]}, "done": false}.')
AGENT_SYSTEM = ("You are a Cambridge booking assistant (MultiWOZ). After each user message answer with JSON only: "
                '{"state": {"domain": {"slot": "value"}}, "act": {"domain": {"act": ["slot"]}}, "reply": "..."}, '
                "the state being everything the user asked for so far, and the reply delexicalized: a [value_<slot>] "
                "placeholder for each slot your act informs.")


@dataclass
class Simulator:
    db: MultiWozDB
    ontology: Ontology
    client: ChatClient
    sampling: Sampling
    retries: int = 3
    levels: tuple[int, ...] = (1, 2, 3)
    max_turns: int = 12
    sampler: ScenarioSampler = field(init=False)

    def __post_init__(self) -> None:
        self.sampler = ScenarioSampler(self.db, self.ontology)

    def compose(self, dialogue_id: str, seed: int, index: int) -> dict[str, Any]:
        rng = random.Random(f"{seed}:{index}")
        level = self.levels[index % len(self.levels)]
        scenario = self.sampler.sample(level, rng)
        goal = {d: asdict(g) for d, g in scenario.goal.items()}
        record = {"id": dialogue_id, "level": level,
                  "scenario": {"level": level, "domains": scenario.domains, "slot_values": scenario.slot_values(),
                               "description": scenario.description},
                  "provenance": {"planner": "simulate", "realizer": "simulate", "model": self.sampling.model,
                                 "prompt_version": PROMPT_VERSION, "retries": self.retries}}
        failures: Counter[str] = Counter()
        turns: list[dict[str, Any]] = []
        history: list[Turn] = []
        state: BeliefState = {}
        for number in range(self.max_turns):

            def answered(attempt: int) -> tuple[tuple[Turn, bool], list[str]]:
                turn, steps, reply, done = self._turn(scenario.description, goal, history, state, attempt)
                return (turn, done), check_flow(steps, self.ontology, self.db) + check_turn(turn, state, steps, reply)

            answer, reasons = first_valid(self.retries, failures, answered)
            if reasons:
                return record | {"reason": reasons[0], "failures": dict(failures), "turn": number}
            turn, done = answer
            history.append(turn)
            turns.append(asdict(turn))
            state = turn.belief_state
            if done:
                break
        return record | {"goal": goal, "turns": turns, "failures": dict(failures)}

    def _turn(self, description: str, goal: dict[str, Any], history: list[Turn], state: BeliefState,
              attempt: int) -> tuple[Turn, list[Step], Reply, bool]:
        past = "\n".join(f"you: {t.user}\nassistant: {t.system}" for t in history)
        said = read_json(ask(self.client, self.sampling, USER_SYSTEM,
                             f"Your goal: {description} ({json.dumps(goal)}).\nDialogue so far:\n{past or '(none)'}\n"
                             "Your next message:", attempt), "{")
        message, requests = said.get("message"), said.get("requests") or {}
        if not isinstance(message, str) or not isinstance(requests, dict):
            raise MalformedAnswer("the user's answer lacks a message or its requests are not an object")
        user = normalize_text(message)
        transcript = "\n".join(f"user: {t.user}\nassistant: {t.system_delex}" for t in history)
        answer = read_json(ask(self.client, self.sampling, AGENT_SYSTEM,
                               f"{transcript}\nuser: {user}\nYour JSON:", attempt), "{")
        declared, act, delex = answer.get("state"), answer.get("act"), answer.get("reply")
        if not isinstance(declared, dict) or not isinstance(act, dict) or not isinstance(delex, str):
            raise MalformedAnswer("the agent's answer lacks state, act or reply")
        new_state = _state(declared)
        steps = [Step("inform", d, {s: v for s, v in slots.items() if state.get(d, {}).get(s) != v})
                 for d, slots in new_state.items() if slots != state.get(d)]
        dialogue_act = _act(act)
        reply = Reply(dialogue_act, self._values(new_state, dialogue_act))
        delex = normalize_text(delex)
        turn = Turn(user=user, system=normalize_text(lexicalize(delex, reply)), system_delex=delex,
                    belief_state=new_state, dialogue_act=dialogue_act,
                    requested_slots={str(d): [str(s) for s in v] for d, v in requests.items() if isinstance(v, list)},
                    active_domains=[d for d in dialogue_act if d != "general"])
        return turn, steps, reply, bool(said.get("done"))

    def _values(self, state: BeliefState, act: DialogueAct) -> dict[str, str]:
        """The values behind the act's slots: from the first row the declared state selects in the act's domain."""
        values: dict[str, str] = {}
        for domain in (d for d in act if d in INFORMABLE_SLOTS):
            constraints = state.get(domain, {})
            rows = self.db.query(domain, constraints) if domain in DB_DOMAINS else []
            row = {k: v for k, v in rows[0].items() if isinstance(v, str)} if rows else {}
            if domain in DB_DOMAINS:
                values.setdefault("choice", str(len(rows)))
            if domain in BOOKABLE:
                row["reference"] = booking_reference(domain, constraints).lower()
            for slot in (s for slots in act[domain].values() for s in slots):
                value = entity_value(domain, row, slot)
                if value is not None:
                    values.setdefault(slot, value)
        return values


def _state(raw: dict[str, Any]) -> BeliefState:
    """A declared state, names and values normalized as the readers do; unknown domains kept (the schema check
    rejects them)."""
    state: BeliefState = {}
    for domain, slots in raw.items():
        if not isinstance(slots, dict):
            raise MalformedAnswer(f"state[{domain!r}] is not an object")
        for raw_slot, raw_value in slots.items():
            slot = state_slot_name(str(raw_slot))
            value = normalize_value(slot, str(raw_value))
            if value is not None:
                state.setdefault(str(domain).lower(), {})[slot] = value
    return state


def _act(raw: dict[str, Any]) -> DialogueAct:
    act: DialogueAct = {}
    for domain, acts in raw.items():
        if not isinstance(acts, dict) or not all(isinstance(v, list) for v in acts.values()):
            raise MalformedAnswer(f"act[{domain!r}] is not an object of slot lists")
        act[str(domain).lower()] = {str(a).lower(): [str(s).lower() for s in v] for a, v in acts.items()}
    return act
