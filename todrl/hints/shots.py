"""Which training turns a prompt shows as examples: a documented, deterministic rule.

The pool is every turn of the shot split with a non-empty reply, less the dialogues being answered (when the
shot split is the evaluated one). For a turn to answer, the pool is ranked by

1. sharing a domain with the hint (the act's domains; the belief state's for corpora without acts), first;
2. the Jaccard overlap of word sets: the user's words plus the hint's against each pool turn's user words plus
   its gold hint (the same text the hint would be, written from the turn's annotations);
3. a random order drawn once from the seed, which breaks ties.

At most one turn is taken per training dialogue, and the first k are shown, most similar first. Without a hint
(`--no-policy`) the rule reduces to the overlap of the user's words and the seeded order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from rewards.spans import NO_DOMAIN, format_belief_state, format_dialogue_act

from todrl.data.records import BeliefState, Dialogue, DialogueAct, Turn


@dataclass(frozen=True)
class TurnRef:
    """A turn in its dialogue, which the prompt needs for the history before it."""

    dialogue: Dialogue
    index: int

    @property
    def turn(self) -> Turn:
        return self.dialogue.turns[self.index]


def turn_refs(dialogues: Iterable[Dialogue]) -> list[TurnRef]:
    """Every turn, in `todrl.format.build_examples` order (what a policy's generations follow)."""
    return [TurnRef(dialogue, index) for dialogue in dialogues for index in range(len(dialogue.turns))]


def hint_text(act: DialogueAct, state: BeliefState, with_act: bool) -> str:
    """What the policy tells the LLM: its dialogue act, or its belief state for corpora without acts (In-Car)."""
    return format_dialogue_act(act) if with_act else format_belief_state(state)


def hint_domains(act: DialogueAct, state: BeliefState, with_act: bool) -> set[str]:
    return set(act if with_act else state) - {NO_DOMAIN}


class ShotPool:
    """The ranked training turns of the module's rule; `hinted` says whether hints take part in it."""

    def __init__(self, dialogues: Sequence[Dialogue], with_act: bool, hinted: bool, seed: int = 0) -> None:
        self.refs = [ref for ref in turn_refs(dialogues) if ref.turn.system_delex.strip()]
        self.with_act, self.hinted = with_act, hinted
        words: dict[str, list[int]] = defaultdict(list)
        domains: dict[str, list[int]] = defaultdict(list)
        sizes = []
        for row, ref in enumerate(self.refs):
            turn = ref.turn
            features = self.features(turn.user, self.gold_hint(turn))
            for word in features:
                words[word].append(row)
            for domain in hint_domains(turn.dialogue_act, turn.belief_state, with_act):
                domains[domain].append(row)
            sizes.append(len(features))
        self._words = {word: np.array(rows) for word, rows in words.items()}
        self._domains = {domain: np.array(rows) for domain, rows in domains.items()}
        self._sizes = np.array(sizes, dtype=float)
        self._order = np.random.default_rng(seed).permutation(len(self.refs))

    def gold_hint(self, turn: Turn) -> str:
        return hint_text(turn.dialogue_act, turn.belief_state, self.with_act)

    def features(self, user: str, hint: str) -> set[str]:
        return set(user.split()) | (set(hint.split()) if self.hinted else set())

    def select(self, user: str, hint: str, domains: set[str], k: int) -> list[TurnRef]:
        """The k examples for one turn, most similar first."""
        if k <= 0 or not self.refs:
            return []
        features = self.features(user, hint)
        overlap = np.zeros(len(self.refs))
        for word in features & self._words.keys():
            overlap[self._words[word]] += 1
        jaccard = overlap / np.maximum(self._sizes + len(features) - overlap, 1)
        shares = np.zeros(len(self.refs), dtype=bool)
        for domain in domains & self._domains.keys():
            shares[self._domains[domain]] = True
        chosen, seen = [], set()
        for row in np.lexsort((self._order, -jaccard, ~shares)):
            ref = self.refs[row]
            if ref.dialogue.id not in seen:
                seen.add(ref.dialogue.id)
                chosen.append(ref)
                if len(chosen) == k:
                    break
        return chosen
