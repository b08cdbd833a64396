"""Fuzzy partial ratio exactly as the standard MultiWOZ evaluator gets it from fuzzywuzzy.

The evaluator installs fuzzywuzzy with python-Levenshtein, whose partial
ratio scores the shorter string against windows of the longer one, each as
long as the shorter string and starting where an edit-distance matching block
puts it, then rounds.  rapidfuzz's own ``fuzz.partial_ratio`` searches every
alignment and does not round, so it scores higher on near-misses ("ian hong
house" / "lan hong house": 96.3 against fuzzywuzzy's 93) and would pass them
as matches; only rapidfuzz's edit-distance primitives are used here.
"""

from __future__ import annotations

from functools import lru_cache

from rapidfuzz.distance import Indel, Levenshtein


@lru_cache(maxsize=1 << 16)
def partial_ratio(first: str, second: str) -> int:
    """0-100, fuzzywuzzy's ``fuzz.partial_ratio`` (argument order matters only between equally long strings)."""
    if first == second:
        return 100
    if not first or not second:
        return 0
    shorter, longer = (first, second) if len(first) <= len(second) else (second, first)
    best = 0.0
    for block in Levenshtein.opcodes(shorter, longer).as_matching_blocks():
        start = max(block.b - block.a, 0)
        ratio = Indel.normalized_similarity(shorter, longer[start : start + len(shorter)])
        if ratio > 0.995:
            return 100
        best = max(best, ratio)
    return round(100 * best)
