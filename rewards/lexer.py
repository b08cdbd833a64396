"""Split generated text into units, fed piece by piece as a decoder emits it.

A unit is a span marker (``<sos_b>``), a bracketed word (``[hotel]``,
``[value_phone]``), a plain word, or a run of whitespace. A unit is handed on
only once no later character can change it, so feeding a text in any number of
pieces yields the same units as feeding it whole: that is what lets a reward
be computed on every prefix without re-reading the prefix.

Lexing is linear in the text however it is cut: a generation is untrusted
input, and one of 800k "<" took 10 s when each lone "<" copied the rest of the
text, or when each piece of a long open bracket re-read the bracket.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MARKERS = ("<sos_b>", "<eos_b>", "<sos_a>", "<eos_a>", "<sos_r>", "<eos_r>")

SPACE, MARKER, BRACKET, WORD = "space", "marker", "bracket", "word"

# Every character matches one alternative, so the scan never stalls. A lone
# "[" or "<" that starts no bracket or marker is a word of its own.
_UNIT = re.compile(
    r"(?P<space>\s+)"
    r"|(?P<marker><(?:sos|eos)_[bar]>)"
    r"|(?P<bracket>\[[^\s\[\]]*\])"
    r"|(?P<word>[^\s\[<]+)"
    r"|(?P<lone>[\[<])"
)
_OPEN_BRACKET = re.compile(r"\[[^\s\[\]]*")
_ENDS_A_WORD = re.compile(r"[\s\[<]")
_ENDS = {"[": re.compile(r"[\s\[\]]"), "<": re.compile(r".", re.DOTALL)}
"""What in a new piece may end or change the pending unit, by its first character (else a word: `_ENDS_A_WORD`)."""
_LONGEST_MARKER = max(map(len, MARKERS))
_MARKER_PREFIXES = frozenset(marker[:end] for marker in MARKERS for end in range(1, len(marker)))

Sink = Callable[[str, str], None]
"""Receives (kind, text) for each finished unit."""


def _lone_is_final(text: str, pos: int) -> bool:
    """Whether the lone "[" or "<" at pos can no longer grow into a bracket or marker."""
    if text[pos] == "[":
        return _OPEN_BRACKET.match(text, pos).end() < len(text)
    return text[pos : pos + _LONGEST_MARKER] not in _MARKER_PREFIXES  # a whole marker would have matched


class Lexer:
    """Incremental splitter: `feed` pieces, `finish` at the end of the text."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pending: list[str] = []
        """The pieces of the one unit not final yet (none empty): joined only once something may end it."""

    def feed(self, piece: str) -> None:
        pending = self._pending
        if not piece:
            return
        if not _ENDS.get(pending[0][0] if pending else "", _ENDS_A_WORD).search(piece):
            pending.append(piece)  # the word or bracket being written goes on: nothing is final yet
            return
        text = "".join(pending) + piece
        pos, end = 0, len(text)
        while pos < end:
            match = _UNIT.match(text, pos)
            kind = match.lastgroup
            if kind == "word" and match.end() == end:
                break
            if kind == "lone" and not _lone_is_final(text, pos):
                break
            self._sink(WORD if kind == "lone" else kind, match.group())
            pos = match.end()
        self._pending = [text[pos:]] if pos < end else []

    def finish(self) -> None:
        """End of text: whatever is pending is final."""
        text, self._pending = "".join(self._pending), []
        pos = 0
        while pos < len(text):
            match = _UNIT.match(text, pos)
            kind = match.lastgroup
            self._sink(WORD if kind == "lone" else kind, match.group())
            pos = match.end()


def units(text: str) -> list[tuple[str, str]]:
    """All units of a complete text."""
    found: list[tuple[str, str]] = []
    lexer = Lexer(lambda kind, unit: found.append((kind, unit)))
    lexer.feed(text)
    lexer.finish()
    return found
