"""Lexical richness of generated responses: how varied a system's language is, not how correct.

The figures and their tokenization follow the standard MultiWOZ evaluator so
they compare with its published tables: punctuation is deleted (not split),
text is lower-cased and split on single spaces, so a response ending in
punctuation contributes an empty final token there too.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

_DELETED = ("``", "''", "'", ".", ",", "?", "!", ")", "(", "%", "/", "-", "_", "-LRB-", "-RRB-", "SYM", ":", ";")
"""Removed in this order, before lower-casing (so "SYM" only in capitals)."""
_SPACES = re.compile(r"\s+")


@dataclass
class Richness:
    entropy: float
    """Shannon entropy (bits) of the unigram distribution."""
    cond_entropy: float
    """Conditional entropy (bits) of a word given the previous one."""
    avg_length: float
    """Tokens per response."""
    msttr: float
    """Mean type-token ratio over consecutive 50-token segments of all responses joined."""
    num_unigrams: int
    num_bigrams: int
    num_trigrams: int
    """Distinct n-grams (within responses)."""

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def tokenize(text: str) -> list[str]:
    for piece in _DELETED:
        text = text.replace(piece, "")
    return _SPACES.sub(" ", text).lower().split(" ")


def msttr(tokens: list[str], window: int = 50) -> float:
    """Mean segmental type-token ratio; the plain TTR when there is at most one window."""
    if not tokens:
        return 0.0
    if len(tokens) <= window:
        return len(set(tokens)) / len(tokens)
    segments = len(tokens) // window
    return sum(len(set(tokens[i * window : (i + 1) * window])) for i in range(segments)) / (segments * window)


def richness(responses: Iterable[str]) -> Richness:
    """Richness of normalized responses (see `normalization.normalize_response`)."""
    unigrams: Counter[str] = Counter()
    bigrams: Counter[tuple[str, str]] = Counter()
    trigrams: Counter[tuple[str, str, str]] = Counter()
    stream: list[str] = []
    count = 0
    for response in responses:
        tokens = tokenize(response)
        stream.extend(tokens)
        count += 1
        unigrams.update(tokens)
        bigrams.update(zip(tokens, tokens[1:]))
        trigrams.update(zip(tokens, tokens[1:], tokens[2:]))
    if not count:
        raise ValueError("lexical richness of zero responses is undefined")
    total = len(stream)
    entropy = -sum(c / total * math.log2(c / total) for c in unigrams.values())
    cond_entropy = -sum(c / total * math.log2(c / unigrams[h]) for (h, _), c in bigrams.items())
    return Richness(
        entropy=entropy,
        cond_entropy=cond_entropy,
        avg_length=total / count,
        msttr=msttr(stream),
        num_unigrams=len(unigrams),
        num_bigrams=len(bigrams),
        num_trigrams=len(trigrams),
    )
