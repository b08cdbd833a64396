"""The prompt: a system instruction, k example turns, the dialogue so far, and (with a policy) its hint.

One system message and one user message, the shape every OpenAI-compatible server accepts::

    system: what the task is, the delexicalized style and its placeholders, what the hint means
    user:   Examples from training dialogues:

            Example 1
            user: i need a train to cambridge on thursday .
            system: where will you be departing from ?
            user: from ely , arriving by 16:15 .
            hint: [train] [inform] id arrive
            reply: [value_id] arrives at [value_arrive] . would that work ?

            ...

            Now continue this dialogue:
            user: ...
            hint: [train] [request] leave
            reply:

Without a policy (`--no-policy`) there is no hint; the turn shows the belief state before it, and the answer
is ``<sos_b> state <eos_b> <sos_r> reply <eos_r>``, read back with the span grammar.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rewards.spans import (
    EOS_B,
    EOS_R,
    SOS_B,
    SOS_R,
    Vocabulary,
    build_target,
    format_belief_state,
    parse_target,
    response_slots,
)

from todrl.data.records import BeliefState, Dialogue
from todrl.hints.shots import TurnRef


@dataclass(frozen=True)
class PromptStyle:
    """What the instruction says about the corpus and the mode."""

    vocabulary: Vocabulary
    placeholders: tuple[str, ...]
    """``[value_x]`` names of the shot pool's replies, most frequent first (ties by name: prompts, and so cache
    keys, must not depend on the order of a set)."""
    with_act: bool
    policy: bool
    """A policy's hint goes with each turn; else the LLM writes the belief state too."""
    history_turns: int = 3

    @classmethod
    def of(cls, pool: Sequence[Dialogue], vocabulary: Vocabulary, with_act: bool, policy: bool,
           history_turns: int = 3) -> PromptStyle:
        counts = Counter(slot for d in pool for turn in d.turns for slot in response_slots(turn.system_delex))
        ranked = sorted(counts, key=lambda slot: (-counts[slot], slot))
        return cls(vocabulary, tuple(ranked), with_act, policy, history_turns)

    def system(self) -> str:
        domains = ", ".join(domain for domain, slots in self.vocabulary.slots.items() if slots)
        placeholders = ", ".join(f"[value_{slot}]" for slot in self.placeholders)
        lines = [
            f"You are the system side of a task-oriented dialogue: you help a user with {domains}.",
            "Replies are delexicalized: lower case, punctuation split off by spaces, and every value that would "
            f"come from the database or a booking written as a placeholder, never invented: {placeholders}."
            + (" [value_choice] stands for a number of options." if "choice" in self.placeholders else ""),
        ]
        if self.policy:
            what = ("its dialogue act, [domain] [act] slot ... (inform: give those slots, request: ask for them)"
                    if self.with_act else "the belief state so far, [domain] slot value ..., what the user wants")
            lines += [f"A dialogue policy hints what the reply must do: {what}. Follow the hint.",
                      "Answer with the reply alone, on one line, as in the examples."]
        else:
            slots = "; ".join(f"{domain}: {', '.join(sorted(names))}"
                              for domain, names in self.vocabulary.slots.items() if names)
            lines += ["First update the belief state, what the user wants so far, from the state before this turn "
                      f"and the user's words, written as [domain] slot value ... with these slots: {slots}.",
                      "Answer on one line exactly as the examples do: "
                      f"{SOS_B} belief state {EOS_B} {SOS_R} reply {EOS_R}"]
        return "\n".join(lines)

    def block(self, ref: TurnRef, hint: str | None, answer: str | None) -> str:
        """One turn with the history before it; `answer` None leaves the answer line open (the turn to answer)."""
        turns = ref.dialogue.turns
        lines = []
        for earlier in turns[max(0, ref.index - self.history_turns): ref.index]:
            lines += [f"user: {earlier.user}", f"system: {earlier.system_delex}"]
        if not self.policy:
            before = format_belief_state(turns[ref.index - 1].belief_state) if ref.index else ""
            lines.append(f"state before this turn: {before or 'none'}")
        lines.append(f"user: {ref.turn.user}")
        if self.policy:
            lines.append(f"hint: {hint or 'none'}")
        label = "reply" if self.policy else "answer"
        return "\n".join(lines + [f"{label}: {answer}" if answer is not None else f"{label}:"])

    def example(self, ref: TurnRef, gold_hint: str) -> str:
        """A training turn answered as the LLM should answer: its gold reply (and state, without a policy)."""
        turn = ref.turn
        answer = (turn.system_delex if self.policy
                  else build_target(turn.belief_state, {}, turn.system_delex, with_act=False))
        return self.block(ref, gold_hint, answer)

    def messages(self, examples: Sequence[str], query: str) -> list[dict[str, str]]:
        shown = "".join(f"Example {n}\n{text}\n\n" for n, text in enumerate(examples, 1))
        intro = f"Examples from training dialogues:\n\n{shown}" if examples else ""
        user = f"{intro}Now continue this dialogue:\n{query}"
        return [{"role": "system", "content": self.system()}, {"role": "user", "content": user}]


@dataclass
class Answer:
    """What one LLM answer gives a predictions file, and whether it came in the form asked for."""

    response: str
    state: BeliefState | None
    well_formed: bool


def answer_text(response: dict[str, Any]) -> str:
    """The message content of a chat completion; "" where the server sent none."""
    try:
        content = response["choices"][0]["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return ""
    return content if isinstance(content, str) else ""


def read_answer(content: str, vocabulary: Vocabulary, policy: bool) -> Answer:
    """The reply (and without a policy the state) of an answer, on one line.

    A reply span is read with the span grammar; an answer without one is the reply as it is, so a malformed
    answer is scored as what it is. Without a policy, the state is whatever the grammar reads (none: {}).
    """
    text = " ".join(content.split())
    target = parse_target(text, vocabulary)
    response = target.response if SOS_R in text else text
    if policy:
        return Answer(response, None, bool(text))
    well_formed = all(marker in text for marker in (SOS_B, EOS_B, SOS_R, EOS_R))
    return Answer(response, target.belief_state, well_formed)
