"""Delexicalization of MultiWOZ utterances from their ``span_info`` annotation.

Annotated spans are exact, where value dictionaries (DAMD's way) guess: "cambridge"
is a station, part of a venue name, or just the city.  Spans index the
whitespace tokens of the raw text, so delexicalization runs before any
re-tokenization.  Some values were never annotated; those whose form
cannot be anything else (phone numbers, train ids, postcodes, booking
references) are caught by pattern, so no target teaches the model a phone number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from todrl.data.normalize import ACT_SLOT_NAMES, DONTCARE, PLACEHOLDER_SLOTS, normalize_value


UNAMBIGUOUS_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"0\d{10}"), "phone"),
    (re.compile(r"tr\d{4}"), "id"),
    (re.compile(r"cb\d{2,3}[a-z]{2}"), "postcode"),
    (re.compile(r"(?=[a-z]*\d)(?=\d*[a-z])[a-z0-9]{8}"), "reference"),
)
"""Whole-token patterns -> slot, for values the annotators left unmarked."""

_DIGIT = re.compile(r"\d")
_EDGE_PUNCTUATION = re.compile(r"([^a-z0-9]*)(.*?)([^a-z0-9]*)")
_ONE_ADDRESS = re.compile(r"\[value_address\](?: , \[value_address\])+")
"""Annotators often split one address into parts ("unit g6 , cambridge leisure park , clifton road")."""


@dataclass(frozen=True)
class Span:
    """One annotated value: tokens ``start..end`` (inclusive, as MultiWOZ counts) hold ``slot``."""

    slot: str
    value: str
    start: int
    end: int

    @property
    def placeholder(self) -> str:
        return f"[value_{self.slot}]"


def parse_spans(rows: Sequence[Sequence[object]], n_tokens: int) -> list[Span]:
    """Validate ``span_info`` rows ``[act, slot, value, start, end]`` and keep those that become placeholders.

    Rows whose slot is not a placeholder slot (opening hours, yes/no answers) or
    whose value means "don't care" stay lexical, as in the standard evaluator's
    references.  An empty span (``end == start - 1``, a handful in MultiWOZ 2.1)
    marks nothing and is dropped; any other span outside the text is an error.
    """
    spans = []
    for index, row in enumerate(rows):
        if not isinstance(row, (list, tuple)) or len(row) != 5:
            raise ValueError(f"span_info[{index}] is {row!r}; expected [act, slot, value, start, end]")
        _, raw_slot, value, start, end = row
        if not isinstance(start, int) or not isinstance(end, int):
            raise ValueError(f"span_info[{index}] {list(row)!r}: start and end must be integers")
        if end == start - 1:
            continue
        if start < 0 or end < start or end >= n_tokens:
            raise ValueError(
                f"span_info[{index}] {list(row)!r} covers tokens {start}..{end} but the text has {n_tokens} tokens"
            )
        slot = ACT_SLOT_NAMES.get(str(raw_slot).lower())
        if slot is None:
            raise ValueError(f"span_info[{index}] {list(row)!r}: unknown slot {raw_slot!r}")
        if slot in PLACEHOLDER_SLOTS and normalize_value(slot, str(value)) != DONTCARE:
            spans.append(Span(slot, str(value), start, end))
    return spans


def delexicalize(text: str, rows: Sequence[Sequence[object]]) -> str:
    """Replace every annotated value in ``text``, and unannotated unambiguous ones, by ``[value_<slot>]``.

    Overlapping spans ("the Gonville Hotel" as a name and "Hotel" as a type)
    resolve to the longest; ties go to the one annotated first.  An address
    annotated in comma-separated parts becomes one placeholder.

    >>> delexicalize("the phone is 01223 ok", [["Hotel-Inform", "Phone", "01223", 3, 3]])
    'the phone is [value_phone] ok'
    """
    tokens = text.split()
    spans = parse_spans(rows, len(tokens))
    taken = [False] * len(tokens)
    starts: dict[int, Span] = {}
    for span in sorted(spans, key=lambda s: s.start - s.end):  # stable: ties keep annotation order
        if any(taken[span.start : span.end + 1]):
            continue
        taken[span.start : span.end + 1] = [True] * (span.end - span.start + 1)
        starts[span.start] = span
    words = []
    for index, token in enumerate(tokens):
        if index in starts:
            words.append(starts[index].placeholder)
        elif not taken[index]:
            words.append(_unambiguous_placeholder(token) or token)
    return _ONE_ADDRESS.sub("[value_address]", " ".join(words))


def _unambiguous_placeholder(token: str) -> str | None:
    """``token`` with its value replaced, punctuation stuck to it kept ("-01223353071" -> "-[value_phone]")."""
    if not _DIGIT.search(token):  # every pattern needs one; most tokens are plain words
        return None
    before, core, after = _EDGE_PUNCTUATION.fullmatch(token.lower()).groups()
    slot = next((slot for pattern, slot in UNAMBIGUOUS_VALUES if pattern.fullmatch(core)), None)
    return None if slot is None else f"{before}[value_{slot}]{after}"
