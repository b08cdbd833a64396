"""The end-to-end text format (seed 004, Sec. 3.1): dialogue turns <-> model input and target strings.

    source: "<prefix>: u_{t-1} : bs_{t-1} : da_{t-1} : sr_{t-1} : u_t"   (In-Car: no da)
    target: "<sos_b> BS <eos_b> <sos_a> DA <eos_a> <sos_r> SR <eos_r>"    (In-Car: no DA span)

The span grammar itself lives in `rewards.spans`, so that rewards can parse
generated text without torch; this module only arranges records around it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from rewards.spans import EOS_B, SOS_B, SPAN_TOKENS, build_target, format_belief_state, format_dialogue_act, parse_target

from todrl.config import check_choices
from todrl.data.records import BeliefState, Dialogue, Turn

__all__ = ["TASKS", "Example", "FormatConfig", "build_examples", "clean_generation", "format_tokens", "parse_target",
           "turn_source", "uses_acts"]

PREFIXES = {
    "e2e": "translate dialogue to belief state, dialogue action, and system response",
    "dst": "translate dialogue to belief state",
    "dst-cot": "translate dialogue to formal representation and rationale",
    "dst-cot-state": "translate dialogue and formal representation to belief state",
}
TASKS = ("e2e", "dst", "dst-cot")
"""e2e: BS, DA, SR; dst: BS; dst-cot: step-by-step state tracking, two examples per turn (`todrl.cot`)."""

_MARKER = re.compile(r"<[a-z_]+>|\[[a-z0-9_ ]+\]")


@dataclass
class Example:
    """One turn as a training or evaluation example; the gold fields feed the rewards."""

    dialogue_id: str
    turn: int
    source: str
    target: str
    belief_state: BeliefState = field(default_factory=dict)
    requested: dict[str, list[str]] = field(default_factory=dict)
    subtask: str = "e2e"
    """e2e (the whole target), the instruction format's state, policy or response (`todrl.instruct`), or dst-cot's
    formal or state (`todrl.cot`)."""


@dataclass
class FormatConfig:
    """How turns become model inputs and targets."""

    type: Literal["e2e", "instruct"] = "e2e"
    """e2e: seed 004's single sequence per turn; instruct: seed 002's sub-task examples with instructions
    (state, policy, response; see todrl.instruct), chained per turn at inference."""
    mix: list[float] = field(default_factory=lambda: [1.0, 1.0, 1.0])
    """instruct: weights of the state, policy and response examples in training; a weight below the largest keeps
    that share of its sub-task's examples (seeded)."""

    def __post_init__(self) -> None:
        check_choices(self)
        if len(self.mix) != 3 or min(self.mix) < 0 or max(self.mix) <= 0:
            raise ValueError(f"mix must be three weights >= 0 (state, policy, response), not all 0; got {self.mix}")


def uses_acts(dialogues: Sequence[Dialogue]) -> bool:
    """Corpora without act annotations (In-Car) get the two-span target."""
    return any(turn.dialogue_act for d in dialogues for turn in d.turns)


def build_examples(dialogues: Sequence[Dialogue], task: str = "e2e", with_act: bool | None = None) -> list[Example]:
    """One example per turn, conditioned on the previous turn's gold annotations (offline RL treats each turn as an
    episode); dst-cot gives two per turn, its stages."""
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if task == "dst-cot":
        from todrl.cot import cot_examples  # it builds its sources here

        return cot_examples(dialogues)
    if with_act is None:
        with_act = task == "e2e" and uses_acts(dialogues)
    examples = []
    for dialogue in dialogues:
        for index, turn in enumerate(dialogue.turns):
            source = turn_source(turn.user, dialogue.turns[index - 1] if index else None, with_act, task)
            if task == "dst":
                target = " ".join(filter(None, [SOS_B, format_belief_state(turn.belief_state), EOS_B]))
            else:
                target = build_target(turn.belief_state, turn.dialogue_act, turn.system_delex, with_act=with_act)
            examples.append(Example(dialogue.id, index, source, target, turn.belief_state, turn.requested_slots))
    return examples


def turn_source(user: str, previous: Turn | None, with_act: bool, task: str = "e2e") -> str:
    """The model input of one turn: the previous turn's words, state, act and delexicalized reply, then `user`.

    Training and serving both build sources here, so a served policy reads exactly what it learned from.
    """
    context = ["", "", ""] + ([""] if with_act else [])
    if previous is not None:
        acts = [format_dialogue_act(previous.dialogue_act)] if with_act else []
        context = [previous.user, format_belief_state(previous.belief_state), *acts, previous.system_delex]
    return " : ".join([PREFIXES[task], *context, user])


def format_tokens(texts: Iterable[str]) -> list[str]:
    """The span markers plus every bracketed marker ([domain], [act], [value_x]) seen in `texts`."""
    found = {m for text in texts for m in _MARKER.findall(text) if " " not in m}
    return list(SPAN_TOKENS) + sorted(found - set(SPAN_TOKENS))


def clean_generation(text: str) -> str:
    """Restore single spaces around markers, which tokenizers glue to their neighbours when decoding."""
    return " ".join(_MARKER.sub(lambda m: f" {m.group(0)} ", text).split())
