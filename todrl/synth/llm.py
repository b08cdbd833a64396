"""The LLM planner and realizer (seed 003, Sec. 3.2.2-3.2.3) over any OpenAI-compatible endpoint (`todrl.llm`).

Dynamic complexity: a baseline flow is asked for first, then rewritten under mutation prompts, the seed's five for
flows (`FLOW_MUTATIONS`) and three for utterances (`UTTERANCE_MUTATIONS`). The schedule is fixed by the dialogue:
dialogue i gets i mod (N+1) flow mutations (N = ``--mutations``), starting at mutation i mod 5, so a corpus spans
baseline to complex; odd-numbered dialogues get one utterance mutation per turn, turn t the mutation t mod 3.
Each retry sends ``"seed": attempt``, a new request that the response cache does not answer with the old failure.
Whatever the LLM writes, the labels still come from the validated flow.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from typing import Any

from todrl.data.normalize import INFORMABLE_SLOTS, normalize_value, state_slot_name
from todrl.llm.client import ChatClient
from todrl.synth.compose import Context
from todrl.synth.flow import INTENTIONS, Reply, Step, rule_flow
from todrl.synth.scenario import ANSWERS, Ontology, Scenario
from todrl.synth.validate import MalformedAnswer, expected_placeholders

FLOW_MUTATIONS: tuple[str, ...] = (
    "domain shift: let the user move to another goal domain before the current one is finished, and come back later",
    "slot-value update: let the user state one value and change it in a later turn (an 'update' step)",
    "extension: spread the constraints over more turns, adding a turn that asks for more information",
    "indirect reference: let a turn refer to a value through an earlier one (e.g. a taxi to 'the restaurant')",
    "co-reference: let a turn refer back to an entity mentioned earlier with a pronoun",
)
"""Seed 003's five flow mutations (Sec. 3.2.2)."""

UTTERANCE_MUTATIONS: tuple[str, ...] = (
    "use a more sophisticated sentence structure",
    "refer to earlier things with pronouns where it stays clear",
    "sound colloquial, like someone speaking",
)
"""Seed 003's three utterance mutations (Sec. 3.2.3); the flow's values must still appear word for word."""


@dataclass
class Sampling:
    model: str
    temperature: float = 0.7
    max_tokens: int = 512


def ask(client: ChatClient, sampling: Sampling, system: str, user: str, attempt: int) -> str:
    body = {"model": sampling.model, "temperature": sampling.temperature, "max_tokens": sampling.max_tokens,
            "seed": attempt, "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
    choices = client.complete(body).get("choices") or [{}]
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) else ""


def read_json(text: str, opening: str) -> Any:
    """The outermost JSON value starting with `opening` ("[" or "{") in an answer that may wrap it in prose."""
    closing = {"[": "]", "{": "}"}[opening]
    start, end = text.find(opening), text.rfind(closing)
    if start < 0 or end < start:
        raise MalformedAnswer(f"no JSON {opening}...{closing} in the answer")
    try:
        return json.loads(text[start:end + 1])
    except ValueError as error:
        raise MalformedAnswer(f"not JSON: {error}") from None


def read_steps(raw: Any) -> list[Step]:
    """Flow steps from JSON, slot names and values normalized as the readers normalize them."""
    if not isinstance(raw, list) or not raw:
        raise MalformedAnswer("the flow is not a non-empty JSON list")
    steps = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("intention"), str) or not isinstance(item.get("domain"), str):
            raise MalformedAnswer("a step lacks its intention or domain")
        values, requests = item.get("slot_values") or {}, item.get("requests") or []
        if not isinstance(values, dict) or not isinstance(requests, list):
            raise MalformedAnswer("slot_values must be an object and requests a list")
        normalized = {}
        for raw_slot, raw_value in values.items():
            slot = state_slot_name(str(raw_slot))
            value = normalize_value(slot, str(raw_value))
            if value is not None:
                normalized[slot] = value
        steps.append(Step(item["intention"].lower(), item["domain"].lower(), normalized,
                          [str(r).lower() for r in requests], str(item.get("rationale", ""))))
    return steps


def _schema_lines(domains: list[str]) -> str:
    return "\n".join(f"- {d}: informable {', '.join(INFORMABLE_SLOTS[d])}; requestable {', '.join(ANSWERS[d])}"
                     for d in domains)


@dataclass
class LLMPlanner:
    client: ChatClient
    sampling: Sampling
    ontology: Ontology
    mutations: int = 2
    name: str = "llm"

    SYSTEM = "You design logic flows of task-oriented dialogues for the MultiWOZ schema. Answer with JSON only."

    def plan(self, scenario: Scenario, index: int, rng: random.Random, attempt: int) -> list[Step]:
        goal = {d: asdict(g) for d, g in scenario.goal.items()}
        example = [asdict(s) for s in rule_flow(scenario, random.Random(0))[:2]]
        prompt = (f"Scenario: {scenario.description}\nGoal: {json.dumps(goal)}\nSchema:\n{_schema_lines(scenario.domains)}\n"
                  f"Write the flow of user turns as a JSON list of objects with keys intention (one of "
                  f"{', '.join(INTENTIONS)}), domain, slot_values (slot -> value, only the goal's), requests (slots "
                  f"asked for) and rationale (one short sentence). Book with the goal's booking values, ask for "
                  f"every requested slot, end with a bye turn. It starts like: {json.dumps(example)}")
        flow = read_json(ask(self.client, self.sampling, self.SYSTEM, prompt, attempt), "[")
        for round_ in range(index % (self.mutations + 1)):
            mutation = FLOW_MUTATIONS[(index + round_) % len(FLOW_MUTATIONS)]
            prompt = (f"Scenario: {scenario.description}\nSchema:\n{_schema_lines(scenario.domains)}\nFlow: "
                      f"{json.dumps(flow)}\nMake this flow more complex by {mutation}. Keep every slot and value "
                      "in the schema and the goal. Answer with the whole new flow, same JSON form.")
            flow = read_json(ask(self.client, self.sampling, self.SYSTEM, prompt, attempt), "[")
        return read_steps(flow)


@dataclass
class LLMRealizer:
    client: ChatClient
    sampling: Sampling
    name: str = "llm"

    def user(self, context: Context) -> str:
        step = context.step
        history = _history(context)
        style = f" Also {UTTERANCE_MUTATIONS[context.index % len(UTTERANCE_MUTATIONS)]}." if context.dialogue % 2 else ""
        prompt = (f"{history}You are the user: {context.scenario.description}. Write your next message. Intention: "
                  f"{step.intention} ({step.domain}). Say these values word for word: {json.dumps(step.slot_values)}. "
                  f"Ask for: {', '.join(step.requests) or 'nothing'}.{style} Answer with the message only.")
        return ask(self.client, self.sampling, "You play a customer of a Cambridge booking assistant.", prompt,
                   context.attempt)

    def system(self, context: Context, reply: Reply) -> str:
        placeholders = [f"[value_{s}]" for s in expected_placeholders(reply).elements()]
        prompt = (f"{_history(context)}Write the assistant's reply saying this dialogue act: {json.dumps(reply.act)}. "
                  f"Write placeholders instead of values, exactly these, once each: {', '.join(placeholders) or 'none'}. "
                  "Answer with the reply only.")
        return ask(self.client, self.sampling, "You are a Cambridge booking assistant writing delexicalized replies.",
                   prompt, context.attempt)


def _history(context: Context) -> str:
    lines = [f"user: {t.user}\nassistant: {t.system_delex}" for t in context.history[-4:]]
    return ("Dialogue so far:\n" + "\n".join(lines) + "\n\n") if lines else ""

