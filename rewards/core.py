"""The rewards of seed 004, Eq. 2-4, computed from counts of what a generation got right.

With SVgt the gold (domain, slot, value) pairs of the turn's belief state, SV̂
the closed pairs generated so far, Sgt the slots the user requested in the
turn and Ŝ the slots generated so far (act slots of informing acts and
``[value_x]`` placeholders)::

    Ru   = |SVgt ∩ SV̂| ρu / |SVgt|,  ρu = exp(-α |SVgt \\ SV̂| / |SVgt|)        (2)
    Rg   = |Sgt ∩ Ŝ| ρg / |Sgt|,      ρg = exp(-β |Sgt \\ Ŝ| / |Sgt|)           (3)
    Rtod = (|SVgt ∩ SV̂| ρu + |Sgt ∩ Ŝ| ρg) / (|SVgt| + |Sgt|)                 (4)

A gold turn may also name slots its system gives unasked (`Gold.offered`:
on MultiWOZ the proposed venue's name, the train's id, the booking's
reference, which Inform and Success need and users seldom ask for). They join
Sgt and are scored exactly like requested slots; without them Sgt is Eq. 3's.

``request_weight`` w counts each requested slot as w belief pairs in Eq. 4,
(|SVgt ∩ SV̂| ρu + w |Sgt ∩ Ŝ| ρg) / (|SVgt| + w |Sgt|): the cumulative state
holds many more items than a turn's requests, so with w = 1 (as printed) Rg is
a few percent of Rtod on MultiWOZ.

Which generated slots form Ŝ is ``request_spans``: "either" (an informing
act or a placeholder names it), "each" (seed 004 gives the act span and the
response "the same reward function": each is scored by Eq. 3 and the two are
averaged, so a slot named only in the act no longer answers for the
response; a generation without an act span is scored on its response) or
"response" (placeholders only, what Success checks).

The penalty is kept as printed: it counts only what is missing, so extra
predictions cost nothing. ``symmetric=True`` also counts predictions outside
the gold set: ρ = exp(-α (|gold \\ pred| + |pred \\ gold|) / max(|gold|, 1)).

An empty gold set makes the ratio 0/0. It is scored as the penalty alone,
granted once the span that would hold the items is closed (``<eos_b>`` for
Ru, ``<eos_r>`` for Rg) and 0 before: with nothing to find, the model is
complete once it has committed to the span, and an empty or cut-off
generation still scores 0. With the printed penalty that is 1; with the
symmetric one exp(-α |SV̂|), so hallucinated state on a turn without state is
penalized. When both gold sets are empty, Rtod is the mean of Ru and Rg.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

REWARDS = ("understanding", "generation", "tod", "none")
"""Eq. 2, Eq. 3, Eq. 4, or no task reward (zero everywhere: the control of an ablation)."""

REQUEST_SPANS = ("either", "each", "response")

INFORMING_ACTS: frozenset[str] = frozenset({"inform", "recommend", "select", "offerbook", "offerbooked", "book"})
"""Acts whose slots give the user a value, and so can satisfy a request."""


@dataclass(frozen=True, kw_only=True)
class RewardConfig:
    """Which task reward, and its parameters: the one place every reward setting lives.

    The paper's symbols: `alpha` is α of Eq. 2 and `beta` β of Eq. 3 (it does
    not report their values). Seed 004 also writes β for the KL coefficient of
    Eq. 5; that one is the RL trainer's `kl_coef` and never appears here.
    """

    type: Literal["tod", "understanding", "generation", "none"] = "tod"
    """tod (Eq. 4) | understanding (Eq. 2) | generation (Eq. 3) | none (no task reward: the KL penalty and any
    SFT term alone, the control)."""
    alpha: float = 1.0
    """α of Eq. 2: how hard missing belief pairs are penalized."""
    beta: float = 1.0
    """β of Eq. 3: how hard missing requested slots are penalized."""
    symmetric: bool = False
    """Also charge generated slot-values and requested slots that are not in the gold turn. The penalty as printed
    counts only what is missing, so over-generating costs nothing and a long run can drift there."""
    informing_acts: list[str] = field(default_factory=lambda: sorted(INFORMING_ACTS))
    """Acts whose slots answer a request (Ŝ of Eq. 3)."""
    request_spans: Literal["either", "each", "response"] = "either"
    """Where a requested slot earns the generation reward: either span, each of act and response (averaged: seed
    004 scores both generation tasks with Eq. 3), or the response only. With "either", naming a slot in the act
    satisfies the request even when the response never gives it, which is what Success checks."""
    request_weight: float = 1.0
    """Weight of one requested slot against one belief pair in Rtod (1 = Eq. 4 as printed)."""
    offer_slots: list[str] = field(default_factory=list)
    """Slots that earn the generation reward like requested ones wherever the gold response gives them unasked
    (empty = Eq. 3 as printed). On MultiWOZ, [name, id, reference]: Inform counts a venue only once a response
    names it, Success wants the booking's reference, and users seldom ask for either."""

    def __post_init__(self) -> None:
        if self.type not in REWARDS:
            raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {self.type!r}")
        if self.request_spans not in REQUEST_SPANS:
            raise ValueError(f"request_spans must be one of {', '.join(REQUEST_SPANS)}, got {self.request_spans!r}")
        for name in ("alpha", "beta", "request_weight"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
        for name in ("informing_acts", "offer_slots"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(item, str) for item in value):
                raise ValueError(f"{name} must be a list of names, got {value!r}")
            object.__setattr__(self, name, sorted(set(value)))


@dataclass
class SlotCounts:
    """Generated slots of one kind against the requested ones: |Sgt ∩ Ŝ| and |Ŝ \\ Sgt|."""

    hits: int = 0
    extra: int = 0


@dataclass
class Tally:
    """Counts behind the rewards; updated in O(1) as a generation grows."""

    state_total: int = 0
    """|SVgt|"""
    state_hits: int = 0
    """|SVgt ∩ SV̂|"""
    state_extra: int = 0
    """|SV̂ \\ SVgt|"""
    state_closed: bool = False
    """<eos_b> was generated."""
    request_total: int = 0
    """|Sgt|"""
    requests: SlotCounts = field(default_factory=SlotCounts)
    """Ŝ = the slots of informing acts and placeholders together."""
    acts: SlotCounts = field(default_factory=SlotCounts)
    """Ŝ = the slots of informing acts only."""
    placeholders: SlotCounts = field(default_factory=SlotCounts)
    """Ŝ = the slots of response placeholders only."""
    response_closed: bool = False
    """<eos_r> was generated."""
    act_opened: bool = False
    """<sos_a> was generated: the act span is scored on its own under request_spans="each"."""


def matched_mass(hits: int, total: int, extra: int, weight: float, symmetric: bool) -> float:
    """The numerator |gt ∩ pred| · ρ of Eq. 2-4.

    >>> matched_mass(2, 4, 0, 1.0, False) == 2 * math.exp(-0.5)
    True
    """
    wrong = total - hits + (extra if symmetric else 0)
    return hits * math.exp(-weight * wrong / max(total, 1))


def penalized_recall(hits: int, total: int, extra: int, weight: float, symmetric: bool, closed: bool) -> float:
    """Eq. 2 / Eq. 3, with the empty-gold rule of the module docstring.

    >>> penalized_recall(4, 4, 3, 1.0, False, closed=False)
    1.0
    >>> round(penalized_recall(1, 2, 0, 1.0, False, closed=False), 4)
    0.3033
    >>> penalized_recall(0, 0, 0, 1.0, False, closed=False), penalized_recall(0, 0, 2, 1.0, False, closed=True)
    (0.0, 1.0)
    >>> round(penalized_recall(0, 0, 2, 1.0, True, closed=True), 4)
    0.1353
    """
    if total == 0:
        if not closed:
            return 0.0
        return math.exp(-weight * extra) if symmetric else 1.0
    return matched_mass(hits, total, extra, weight, symmetric) / total


def understanding(tally: Tally, config: RewardConfig) -> float:
    """Ru, Eq. 2."""
    t = tally
    return penalized_recall(t.state_hits, t.state_total, t.state_extra, config.alpha, config.symmetric, t.state_closed)


def request_counts(tally: Tally, spans: str) -> list[SlotCounts]:
    """The counts of each span scored on its own: one, or for "each" the act's (once an act span is written;
    In-Car's format has none) and the response's."""
    t = tally
    if spans == "either":
        return [t.requests]
    if spans == "response" or not t.act_opened:
        return [t.placeholders]
    return [t.acts, t.placeholders]


def generation(tally: Tally, config: RewardConfig) -> float:
    """Rg, Eq. 3 (the mean over the act and the response for request_spans="each")."""
    t = tally
    scores = [penalized_recall(c.hits, t.request_total, c.extra, config.beta, config.symmetric, t.response_closed)
              for c in request_counts(t, config.request_spans)]
    return sum(scores) / len(scores)


def tod(tally: Tally, config: RewardConfig) -> float:
    """Rtod, Eq. 4: Ru and Rg weighted by the sizes of their gold sets.

    >>> tally = Tally(state_total=3, state_hits=3, request_total=1)
    >>> tod(tally, RewardConfig())
    0.75
    """
    t = tally
    weight = config.request_weight
    total = t.state_total + weight * t.request_total
    if total == 0:
        return (understanding(t, config) + generation(t, config)) / 2
    state = matched_mass(t.state_hits, t.state_total, t.state_extra, config.alpha, config.symmetric)
    counts = request_counts(t, config.request_spans)
    request = sum(matched_mass(c.hits, t.request_total, c.extra, config.beta, config.symmetric) for c in counts)
    return (state + weight * request / len(counts)) / total


def no_reward(tally: Tally, config: RewardConfig) -> float:
    return 0.0


REWARD_FUNCTIONS = {"understanding": understanding, "generation": generation, "tod": tod, "none": no_reward}
