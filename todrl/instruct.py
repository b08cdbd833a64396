"""The instruction format (seed 002, Spec-TOD): each turn as sub-task examples with explicit instructions.

    state:    history, user turn, instruction + the listed domains' slots   -> <sos_b> BS <eos_b>
    policy:   ... + state + database result                               -> <sos_a> DA <eos_a>   (not In-Car)
    response: ... + state (+ act)                                         -> <sos_r> SR <eos_r>

Targets stay in the span grammar that `rewards` reads, so each sub-task is rewarded by the matching reward (Ru
for the state, Rg for the act and the response), and inference chains the sub-tasks per turn (state -> database
-> act -> response) into the end-to-end target that every evaluator scores unchanged.

Which slots an instruction lists: those of the domains in the previous turn's state and of the domains the user
names, else of every domain (by name only); for the policy and response, the domains of the state they are given.
Slots are described from the corpus's schema (MultiWOZ 2.2's `schema_2.2.json` in the corpus folder, In-Car's
fixed KB fields), by name where there is none.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from rewards import Vocabulary
from rewards.spans import EOS_A, EOS_B, EOS_R, SOS_A, SOS_B, SOS_R, format_belief_state, format_dialogue_act, parse_target

from todrl.data.db import MultiWozDB
from todrl.data.records import BeliefState, Dialogue, Turn
from todrl.format import Example, FormatConfig, build_examples, uses_acts

SUBTASKS = ("state", "policy", "response")
INSTRUCTIONS = {
    "state": "track the dialogue state: write every slot the user has constrained as <sos_b> [domain] slot value <eos_b>",
    "policy": "choose the system's dialogue act for this state and database result, as <sos_a> [domain] [act] slot <eos_a>",
    "response": "write the system's reply with [value_slot] placeholders for database values, as <sos_r> reply <eos_r>",
}
INCAR_DESCRIPTIONS = {
    "event": "the calendar event", "time": "time of the event", "date": "date of the event or forecast",
    "party": "who attends the event", "room": "where the event takes place", "agenda": "what the event is about",
    "location": "city of the weather forecast", "weather_attribute": "kind of weather asked about",
    "poi_type": "kind of place to drive to", "distance": "how far the place may be",
}  # fmt: skip
_MULTIWOZ_NAMES = {"bookpeople": "people", "bookday": "day", "bookstay": "stay", "booktime": "time",
                   "leaveat": "leave", "arriveby": "arrive"}


class SlotCatalogue:
    """The slots of a corpus's domains, with their descriptions where the corpus has them."""

    def __init__(self, vocabulary: Vocabulary, descriptions: Mapping[str, Mapping[str, str]]) -> None:
        self.slots = {domain: tuple(slots) for domain, slots in vocabulary.slots.items() if slots}
        self.descriptions = descriptions

    @classmethod
    def of(cls, dataset: str, data_dir: str | Path | None, vocabulary: Vocabulary) -> SlotCatalogue:
        if dataset == "incar":
            return cls(vocabulary, {domain: INCAR_DESCRIPTIONS for domain in vocabulary.slots})
        schema = Path(data_dir or _sample_dir()) / "schema_2.2.json"
        return cls(vocabulary, read_multiwoz_schema(schema) if dataset == "multiwoz21" and schema.is_file() else {})

    def listing(self, domains: Sequence[str]) -> str:
        """`domain: slot (description), ...` for `domains`; every domain by name when none is given."""
        known = [d for d in domains if d in self.slots]
        if not known:
            return "domains: " + ", ".join(self.slots)
        parts = []
        for domain in known:
            described = self.descriptions.get(domain, {})
            slots = (f"{slot} ({described[slot]})" if slot in described else slot for slot in self.slots[domain])
            parts.append(f"{domain}: {', '.join(slots)}")
        return "; ".join(parts)

    def named_in(self, text: str) -> list[str]:
        words = set(text.split())
        return [domain for domain in self.slots if domain in words]


def read_multiwoz_schema(path: Path) -> dict[str, dict[str, str]]:
    """{domain: {todrl slot name: description}} from MultiWOZ 2.2's schema (`hotel-bookpeople` -> `people`)."""
    descriptions: dict[str, dict[str, str]] = {}
    for service in json.loads(path.read_text()):
        for slot in service["slots"]:
            domain, name = slot["name"].split("-", 1)
            descriptions.setdefault(domain, {})[_MULTIWOZ_NAMES.get(name, name)] = slot["description"]
    return descriptions


def _sample_dir() -> Path:
    from todrl.data.multiwoz import SAMPLE_PATH

    return Path(SAMPLE_PATH)


class InstructFormat:
    """Builds the sub-task sources of a corpus's turns, from gold fields in training and generated ones at inference."""

    def __init__(self, catalogue: SlotCatalogue, db: MultiWozDB | None, with_act: bool) -> None:
        self.catalogue, self.db, self.with_act = catalogue, db, with_act

    @classmethod
    def of(cls, dataset: str, data_dir: str | Path | None, vocabulary: Vocabulary,
           dialogues: Sequence[Dialogue]) -> InstructFormat:
        db = MultiWozDB(Path(data_dir or _sample_dir()) / "db") if dataset == "multiwoz21" else None
        return cls(SlotCatalogue.of(dataset, data_dir, vocabulary), db, uses_acts(dialogues))

    @property
    def subtasks(self) -> tuple[str, ...]:
        return SUBTASKS if self.with_act else ("state", "response")

    def source(self, subtask: str, turn: Turn, previous: Turn | None, state: BeliefState | None = None,
               act: str | None = None) -> str:
        """The input of one sub-task; `state` and `act` are the gold ones in training, the generated ones later.

        Oldest first, so that cutting a long input from the left drops history before the instruction.
        """
        parts = []
        if previous is not None:
            parts += [f"previous user: {previous.user}", f"previous state: {format_belief_state(previous.belief_state)}",
                      f"previous system: {previous.system_delex}"]
        parts.append(f"user: {turn.user}")
        if subtask == "state":
            domains = [*(previous.belief_state if previous else {}), *self.catalogue.named_in(turn.user)]
        else:
            domains = list(state or {})
            parts.append(f"state: {format_belief_state(state or {})}")
            if subtask == "policy" and self.db is not None:
                parts.append(f"database: {self.database(state or {})}")
            if subtask == "response" and act is not None:
                parts.append(f"act: {act}")
        parts += [f"instruction: {INSTRUCTIONS[subtask]}", f"slots: {self.catalogue.listing(list(dict.fromkeys(domains)))}"]
        return " | ".join(parts)

    def database(self, state: BeliefState) -> str:
        """Each state domain's match-count bucket, the pointer tokens of the end-to-end format."""
        if self.db is None:
            return "none"
        return " ".join(f"[{domain}] {self.db.pointer(domain, pairs)}" for domain, pairs in state.items()) or "none"

    def examples(self, dialogues: Sequence[Dialogue], mix: Mapping[str, float], seed: int) -> list[Example]:
        """Every turn's sub-task examples with gold inputs; a sub-task of weight w < the largest keeps that share."""
        rng = random.Random(seed)
        top = max(mix.values())
        out = []
        for dialogue in dialogues:
            for index, turn in enumerate(dialogue.turns):
                previous = dialogue.turns[index - 1] if index else None
                act = format_dialogue_act(turn.dialogue_act) if self.with_act else None
                targets = {"state": span(SOS_B, format_belief_state(turn.belief_state), EOS_B),
                           "policy": span(SOS_A, act or "", EOS_A), "response": span(SOS_R, turn.system_delex, EOS_R)}
                for subtask in self.subtasks:
                    if rng.random() * top >= mix.get(subtask, 0.0):
                        continue
                    source = self.source(subtask, turn, previous, turn.belief_state, act)
                    out.append(Example(dialogue.id, index, source, targets[subtask], turn.belief_state,
                                       turn.requested_slots, subtask=subtask))
        return out


def turn_examples(config: FormatConfig, dialogues: Sequence[Dialogue], dataset: str, data_dir: str | Path | None,
                  vocabulary: Vocabulary, task: str = "e2e", seed: int = 0) -> list[Example]:
    """The training examples of `dialogues` in the format `config` names."""
    if config.type == "e2e":
        return build_examples(dialogues, task=task)
    if task != "e2e":
        raise ValueError(f"the instruct format covers the e2e task (state tracking alone: --format.mix 1,0,0), not {task!r}")
    form = InstructFormat.of(dataset, data_dir, vocabulary, dialogues)
    return form.examples(dialogues, dict(zip(SUBTASKS, config.mix)), seed)


def inference_format(config: FormatConfig | str, dataset: str, data_dir: str | Path | None, vocabulary: Vocabulary,
                     dialogues: Sequence[Dialogue]) -> InstructFormat | None:
    """What generation chains for a policy trained in `config`'s format; None for the end-to-end one."""
    kind = config if isinstance(config, str) else config.type
    return InstructFormat.of(dataset, data_dir, vocabulary, dialogues) if kind == "instruct" else None


def checkpoint_config(checkpoint: str | Path) -> dict:
    """The run config saved with a todrl checkpoint; {} for a bare model directory."""
    state = Path(checkpoint) / "trainer_state.json"
    return (json.loads(state.read_text()).get("config") or {}) if state.is_file() else {}


def checkpoint_format(checkpoint: str | Path) -> str:
    """The format a todrl checkpoint was trained in (its saved run config), e2e when it says none."""
    return (checkpoint_config(checkpoint).get("format") or {}).get("type", "e2e")


def checkpoint_task(checkpoint: str | Path) -> str:
    """The task a todrl checkpoint was trained for (e2e, dst, dst-cot), e2e when its run config says none."""
    return checkpoint_config(checkpoint).get("task") or "e2e"


def chain_targets(generate, form: InstructFormat, dialogues: Sequence[Dialogue], vocabulary: Vocabulary) -> list[str]:
    """Per turn, in `build_examples` order, the end-to-end target that chaining the sub-tasks writes.

    `generate(sources)` decodes a batch of sources; each sub-task is decoded for every turn before the next one,
    so batches stay full.
    """
    turns = [(turn, d.turns[i - 1] if i else None) for d in dialogues for i, turn in enumerate(d.turns)]
    states = generate([form.source("state", turn, previous) for turn, previous in turns])
    read = [parse_target(text, vocabulary).belief_state for text in states]
    acts: list[str | None] = [None] * len(turns)
    if form.with_act:
        acts = generate([form.source("policy", turn, previous, state) for (turn, previous), state in zip(turns, read)])
    hints = [None if act is None else format_dialogue_act(parse_target(act, vocabulary).dialogue_act) for act in acts]
    replies = generate([form.source("response", turn, previous, state, hint)
                        for (turn, previous), state, hint in zip(turns, read, hints)])
    return [" ".join(filter(None, parts)) for parts in zip(states, acts, replies)]


def span(opening: str, text: str, closing: str) -> str:
    return " ".join([opening, *text.split(), closing])


def subtask_config(config, subtask: str):
    """The reward of a sub-task's span under a `tod` run: Ru for the state, Rg for the act and the reply."""
    if config.type != "tod" or subtask == "e2e":
        return config
    return replace(config, type="understanding" if subtask == "state" else "generation")
