"""Rewards of whole generations and of each of their tokens: what a trainer calls.

Every function takes the reward's settings as one `RewardConfig` and the
corpus's span grammar as one `Vocabulary` (default: MultiWOZ and In-Car).

A generation is scored as written: a value or act slot counts once something
after it closes it, so a text cut off in the middle of a value does not get
that value. This keeps the reward of a text equal to the reward of the same
text as the last prefix of a longer one, which is what makes per-token
deltas sum to it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any

from rewards.core import REWARD_FUNCTIONS, RewardConfig
from rewards.gold import Gold
from rewards.progress import RewardTracker
from rewards.spans import Slots, Vocabulary

MODES = ("delta", "cumulative")

Tokens = Sequence[str] | tuple[str, Sequence[int]]
"""Decoded token pieces, or (text, end offset of each token in text)."""

GoldLike = Any
"""A Gold, a Turn, or a mapping with "belief_state" and "requested_slots" (see Gold.from_turn)."""

VocabularyLike = Vocabulary | Slots | None

DEFAULT_CONFIG = RewardConfig()

# Space markers of SentencePiece ("▁") and byte-level BPE ("Ġ", "Ċ", "ĉ").
_SPACE_MARKERS = str.maketrans({"\u2581": " ", "\u0120": " ", "\u010a": "\n", "\u0109": "\t"})
_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def as_gold(gold: GoldLike) -> Gold:
    return gold if isinstance(gold, Gold) else Gold.from_turn(gold)


def _score(text: str, gold: GoldLike, config: RewardConfig, vocabulary: VocabularyLike) -> float:
    return RewardTracker(as_gold(gold), config, vocabulary).step(text)


def _as(config: RewardConfig | None, reward: str) -> RewardConfig:
    return dataclasses.replace(config or DEFAULT_CONFIG, type=reward)


def understanding_reward(generation: str, gold: GoldLike, config: RewardConfig | None = None,
                         vocabulary: VocabularyLike = None) -> float:
    """Ru (Eq. 2): closed belief pairs of `generation` against the gold state.

    >>> gold = Gold({"hotel": {"stars": "4", "area": "north"}}, {"hotel": ["phone"]})
    >>> understanding_reward("<sos_b> [hotel] stars 4 area north <eos_b>", gold)
    1.0
    >>> round(understanding_reward("<sos_b> [hotel] stars 4 area nor", gold), 4)  # "nor..." still open
    0.3033
    """
    return _score(generation, gold, _as(config, "understanding"), vocabulary)


def generation_reward(generation: str, gold: GoldLike, config: RewardConfig | None = None,
                      vocabulary: VocabularyLike = None) -> float:
    """Rg (Eq. 3): requested slots found in informing acts or [value_x] placeholders.

    >>> gold = Gold({}, {"hotel": ["phone", "postcode"]})
    >>> text = "<sos_a> [hotel] [inform] phone <eos_a> <sos_r> it is [value_postcode] ."
    >>> each = RewardConfig(request_spans="each")
    >>> generation_reward(text, gold), round(generation_reward(text, gold, each), 4)
    (1.0, 0.3033)
    """
    return _score(generation, gold, _as(config, "generation"), vocabulary)


def tod_reward(generation: str, gold: GoldLike, config: RewardConfig | None = None,
               vocabulary: VocabularyLike = None) -> float:
    """Rtod (Eq. 4): Ru and Rg weighted by the sizes of their gold sets (requests by `request_weight` each)."""
    return _score(generation, gold, _as(config, "tod"), vocabulary)


def sequence_rewards(generations: Sequence[str], golds: Sequence[GoldLike], config: RewardConfig | None = None,
                     vocabulary: VocabularyLike = None) -> list[float]:
    """One reward (`config.type`) per generation."""
    _same_length(generations, golds)
    config, vocabulary = config or DEFAULT_CONFIG, Vocabulary.of(vocabulary)
    return [_score(text, gold, config, vocabulary) for text, gold in zip(generations, golds)]


def token_pieces(tokens: Tokens) -> list[str]:
    """The text each token adds: decoded pieces with space markers undone, or slices at the offsets."""
    if isinstance(tokens, str):
        raise TypeError("tokens must be a list of token strings or (text, end offsets), not a bare string")
    if isinstance(tokens, tuple) and len(tokens) == 2 and isinstance(tokens[0], str) and not isinstance(tokens[1], str):
        text, ends = tokens
        starts = [0, *ends[:-1]]
        for index, (start, end) in enumerate(zip(starts, ends)):
            if not isinstance(end, int) or not start <= end <= len(text):
                raise ValueError(
                    f"token {index}: end offset {end!r} must be an int in [{start}, {len(text)}] "
                    "(offsets are non-decreasing character ends within the text)"
                )
        return [text[start:end] for start, end in zip(starts, ends)]
    pieces = []
    for index, token in enumerate(tokens):
        if not isinstance(token, str):
            raise TypeError(f"token {index}: expected a string, got {type(token).__name__} {token!r}")
        byte = _BYTE_PIECE.fullmatch(token) if token.startswith("<0x") else None
        pieces.append(chr(int(byte.group(1), 16)) if byte else token.translate(_SPACE_MARKERS))
    return pieces


def token_rewards(tokens: Tokens, gold: GoldLike, mode: str = "delta", *, config: RewardConfig | None = None,
                  vocabulary: VocabularyLike = None) -> list[float]:
    """One reward per token, in one pass over the generation.

    "cumulative": the reward of the prefix ending at each token. "delta": its
    change at each token (potential-based shaping), which sums to the reward
    of the whole generation.

    >>> gold = Gold({"taxi": {"leave": "17:15"}}, {})
    >>> token_rewards(["<sos_b>", "▁[taxi]", "▁leave", "▁17:15", "▁<eos_b>"], gold, mode="cumulative")
    [0.0, 0.0, 0.0, 0.0, 1.0]
    """
    return token_rewards_and_parts(tokens, gold, mode, config=config, vocabulary=vocabulary)[0]


def token_rewards_and_parts(tokens: Tokens, gold: GoldLike, mode: str = "delta", *, config: RewardConfig | None = None,
                            vocabulary: VocabularyLike = None) -> tuple[list[float], dict[str, float]]:
    """`token_rewards` and the generation's Ru, Rg and Rtod (`reward_parts`) from the same single reading."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    tracker = RewardTracker(as_gold(gold), config or DEFAULT_CONFIG, vocabulary)
    cumulative = [tracker.step(piece) for piece in token_pieces(tokens)]
    rewards = cumulative if mode == "cumulative" else [after - before for before, after in zip([0.0, *cumulative], cumulative)]
    return rewards, _parts(tracker)


def batch_token_rewards(batch: Sequence[Tokens], golds: Sequence[GoldLike], mode: str = "delta", *,
                        config: RewardConfig | None = None, vocabulary: VocabularyLike = None) -> list[list[float]]:
    """token_rewards for each generation of a batch."""
    _same_length(batch, golds)
    vocabulary = Vocabulary.of(vocabulary)
    return [token_rewards(tokens, gold, mode, config=config, vocabulary=vocabulary) for tokens, gold in zip(batch, golds)]


def _same_length(generations: Sequence[Any], golds: Sequence[Any]) -> None:
    if len(generations) != len(golds):
        raise ValueError(f"got {len(generations)} generations but {len(golds)} gold turns; need one per generation")


def reward_parts(generation: str, gold: GoldLike, config: RewardConfig | None = None,
                 vocabulary: VocabularyLike = None) -> dict[str, float]:
    """Ru, Rg and Rtod of one generation from one reading: which part of the reward moved."""
    tracker = RewardTracker(as_gold(gold), config or DEFAULT_CONFIG, vocabulary)
    tracker.feed(generation)
    return _parts(tracker)


def _parts(tracker: RewardTracker) -> dict[str, float]:
    return {name: REWARD_FUNCTIONS[name](tracker.tally, tracker.config) for name in ("understanding", "generation", "tod")}
