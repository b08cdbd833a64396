"""A reward that follows a generation as it is written, token by token.

Each piece is read once and each closed item updates the counts in O(1), so
the reward of every prefix of a generation costs one pass over it, not one
parse per prefix.
"""

from __future__ import annotations

from rewards.core import REWARD_FUNCTIONS, RewardConfig, Tally
from rewards.gold import Gold
from rewards.spans import Slots, SpanParser, Vocabulary


class RewardTracker(SpanParser):
    """`step(piece)` returns the reward of everything fed so far.

    A belief value counts once closed (by the next slot, a domain bracket or a
    marker), so "british" does not match gold "modern british" early; the
    last pair of a later-overwritten slot is the one that counts, as in the
    parsed state an evaluator sees.
    """

    def __init__(
        self, gold: Gold, config: RewardConfig | None = None, vocabulary: Vocabulary | Slots | None = None
    ) -> None:
        super().__init__(vocabulary)
        self.gold = gold
        self.config = config or RewardConfig()
        self.tally = Tally(state_total=len(gold.pairs), request_total=len(gold.expected))
        self._predicted: dict[tuple[str, str], str] = {}
        self._seen: dict[str, set[str]] = {"either": set(), "act": set(), "placeholder": set()}
        self._counts = {"either": self.tally.requests, "act": self.tally.acts, "placeholder": self.tally.placeholders}
        self._formula = REWARD_FUNCTIONS[self.config.type]
        self._reward: float | None = None  # None once the tally has changed

    @property
    def reward(self) -> float:
        if self._reward is None:
            self._reward = self._formula(self.tally, self.config)
        return self._reward

    def step(self, piece: str) -> float:
        self.feed(piece)
        return self.reward

    def _on_pair(self, domain: str, slot: str, value: str) -> None:
        super()._on_pair(domain, slot, value)
        key, value = (domain, slot), value.lower()  # already lexer words: see normalize_value
        previous = self._predicted.get(key)
        if previous == value:
            return
        gold = self.gold.pairs.get(key)
        tally = self.tally
        self._reward = None
        if previous is not None:
            if previous == gold:
                tally.state_hits -= 1
            else:
                tally.state_extra -= 1
        self._predicted[key] = value
        if value == gold:
            tally.state_hits += 1
        else:
            tally.state_extra += 1

    def _on_act_slot(self, domain: str, act: str, slot: str) -> None:
        super()._on_act_slot(domain, act, slot)
        if act in self.config.informing_acts:
            self._generated(slot, "act")

    def _on_placeholder(self, slot: str) -> None:
        self._generated(slot, "placeholder")

    def _generated(self, slot: str, where: str) -> None:
        """Count `slot` once per span it appears in, and once for the two together."""
        hit = slot in self.gold.expected
        for channel in ("either", where):
            if slot in self._seen[channel]:
                continue
            self._seen[channel].add(slot)
            self._reward = None
            counts = self._counts[channel]
            if hit:
                counts.hits += 1
            else:
                counts.extra += 1

    def _on_span_start(self, span: str) -> None:
        if span == "a" and not self.tally.act_opened:
            self.tally.act_opened = True
            self._reward = None

    def _on_span_end(self, span: str) -> None:
        self._reward = None
        if span == "b":
            self.tally.state_closed = True
        elif span == "r":
            self.tally.response_closed = True
