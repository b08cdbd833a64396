"""Corpus BLEU: sacreBLEU's (the standard) with references counted once, and the legacy one.

The standard MultiWOZ evaluator scores with ``sacrebleu.corpus_bleu`` (13a
tokenization, exponential smoothing, one reference per turn).  Scoring many
systems or checkpoints against the same test set re-tokenizes the references
every time; `ReferenceBleu` keeps their n-gram counts and lets a predictions
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


class ReferenceBleu:
    """sacreBLEU corpus BLEU against one fixed reference per segment key (e.g. (dialogue id, turn))."""

    def __init__(self, references: Mapping[Hashable, str]) -> None:
        self._tokenize = Tokenizer13a()
        self._references: dict[Hashable, tuple[Counter, int]] = {
            key: extract_all_word_ngrams(self._tokenize(text.rstrip()), 1, MAX_ORDER) for key, text in references.items()
        }

    def __contains__(self, key: Hashable) -> bool:
        return key in self._references

    def score(self, hypotheses: Iterable[tuple[Hashable, str]]) -> float:
        """BLEU (0-100) of (key, hypothesis) pairs; every key must have a reference."""
        correct = [0] * MAX_ORDER
        total = [0] * MAX_ORDER
        sys_len = ref_len = 0
        for key, hypothesis in hypotheses:
            ref_ngrams, length = self._references[key]
            ngrams, hyp_len = extract_all_word_ngrams(self._tokenize(hypothesis.rstrip()), 1, MAX_ORDER)
            sys_len += hyp_len
            ref_len += length
            for ngram, count in ngrams.items():
                order = len(ngram) - 1
                total[order] += count
                matched = ref_ngrams.get(ngram)
                if matched:
                    correct[order] += min(count, matched)
        return BLEU.compute_bleu(correct, total, sys_len, ref_len, smooth_method="exp").score


def legacy_bleu(pairs: Iterable[tuple[str, str]]) -> float:
    """The corpus BLEU of DAMD/UBAR/PPTOD (0-100): whitespace tokens, clipped counts, tiny additive smoothing.

    Kept for comparing with papers that report it (seed 004's 17.2); it differs
    from sacreBLEU in tokenization and in smoothing zero n-gram matches.
    """
    matched = [0] * MAX_ORDER
    counted = [0] * MAX_ORDER
    hyp_length = ref_length = 0
    for hypothesis, reference in pairs:
        hyp, ref = hypothesis.split(), reference.split()
        hyp_length += len(hyp)
        ref_length += len(ref)
        for n in range(1, MAX_ORDER + 1):
            hyp_ngrams = Counter(zip(*(hyp[i:] for i in range(n))))
            ref_ngrams = Counter(zip(*(ref[i:] for i in range(n))))
            counted[n - 1] += sum(hyp_ngrams.values())
            matched[n - 1] += sum(min(count, ref_ngrams[ngram]) for ngram, count in hyp_ngrams.items())
    if hyp_length == 0:
        return 0.0
    tiny = 1e-7
    precisions = [m / (c + tiny) + tiny for m, c in zip(matched, counted)]
    brevity = 1.0 if hyp_length > ref_length else math.exp(1 - ref_length / hyp_length)
    return 100 * brevity * math.exp(math.fsum(0.25 * math.log(p) for p in precisions))
