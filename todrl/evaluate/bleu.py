"""Corpus BLEU: sacreBLEU's (the standard) with references counted once, and the legacy one.

The standard MultiWOZ evaluator scores with ``sacrebleu.corpus_bleu`` (13a
tokenization, exponential smoothing, one reference per turn).  Scoring many
systems or checkpoints against the same test set re-tokenizes the references
every time; `ReferenceBleu` keeps their n-gram counts (for either BLEU) and lets a predictions
file cover any subset of turns (published files skip some dialogues), while
sacreBLEU computes the final score from the same statistics it would collect.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping

from sacrebleu.metrics import BLEU
from sacrebleu.metrics.helpers import extract_all_word_ngrams
from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

MAX_ORDER = 4


Ngrams = tuple[Counter, int]
"""n-gram counts of orders 1..4 and the token count of one segment."""


class ReferenceBleu:
    """Corpus BLEU against one fixed reference per segment key (e.g. (dialogue id, turn)).

    sacreBLEU's by default; ``legacy=True`` gives `legacy_bleu`'s, with the references' n-grams counted once.
    """

    def __init__(self, references: Mapping[Hashable, str], legacy: bool = False) -> None:
        self._tokenize = str.strip if legacy else Tokenizer13a()  # the legacy one splits on whitespace only
        self._legacy = legacy
        self._references: dict[Hashable, Ngrams] = {key: self._ngrams(text) for key, text in references.items()}

    def __contains__(self, key: Hashable) -> bool:
        return key in self._references

    def _ngrams(self, text: str) -> Ngrams:
        return extract_all_word_ngrams(self._tokenize(text.rstrip()), 1, MAX_ORDER)

    def score(self, hypotheses: Iterable[tuple[Hashable, str]]) -> float:
        """BLEU (0-100) of (key, hypothesis) pairs; every key must have a reference."""
        pairs = ((self._ngrams(hypothesis), self._references[key]) for key, hypothesis in hypotheses)
        return _legacy_formula(*_statistics(pairs)) if self._legacy else _sacrebleu_formula(*_statistics(pairs))


def legacy_bleu(pairs: Iterable[tuple[str, str]]) -> float:
    """The corpus BLEU of DAMD/UBAR/PPTOD (0-100): whitespace tokens, clipped counts, tiny additive smoothing.

    Kept for comparing with papers that report it (seed 004's 17.2); it differs
    from sacreBLEU in tokenization and in smoothing zero n-gram matches.
    """
    counted = ((extract_all_word_ngrams(hyp, 1, MAX_ORDER), extract_all_word_ngrams(ref, 1, MAX_ORDER)) for hyp, ref in pairs)
    return _legacy_formula(*_statistics(counted))


def _statistics(pairs: Iterable[tuple[Ngrams, Ngrams]]) -> tuple[list[int], list[int], int, int]:
    """Clipped n-gram matches and n-gram totals per order, hypothesis and reference lengths, over (hyp, ref) pairs."""
    correct = [0] * MAX_ORDER
    total = [0] * MAX_ORDER
    sys_len = ref_len = 0
    for (ngrams, hyp_len), (ref_ngrams, length) in pairs:
        sys_len += hyp_len
        ref_len += length
        for ngram, count in ngrams.items():
            order = len(ngram) - 1
            total[order] += count
            matched = ref_ngrams.get(ngram)
            if matched:
                correct[order] += min(count, matched)
    return correct, total, sys_len, ref_len


def _sacrebleu_formula(correct: list[int], total: list[int], sys_len: int, ref_len: int) -> float:
    return BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp").score


def _legacy_formula(correct: list[int], total: list[int], sys_len: int, ref_len: int) -> float:
    if sys_len == 0:
        return 0.0
    tiny = 1e-7
    precisions = [m / (c + tiny) + tiny for m, c in zip(correct, total)]
    brevity = 1.0 if sys_len > ref_len else math.exp(1 - ref_len / sys_len)
    return 100 * brevity * math.exp(math.fsum(0.25 * math.log(p) for p in precisions))
