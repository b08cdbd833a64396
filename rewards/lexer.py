"""Split generated text into units, fed piece by piece as a decoder emits it.

A unit is a span marker (``<sos_b>``), a bracketed word (``[hotel]``,
``[value_phone]``), a plain word, or a run of whitespace. A unit is handed on
only once no later character can change it, so feeding a text in any number of
pieces yields the same units as feeding it whole: that is what lets a reward
be computed on every prefix without re-reading the prefix.
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

Sink = Callable[[str, str], None]
"""Receives (kind, text) for each finished unit."""


def _lone_is_final(text: str, pos: int) -> bool:
    """Whether the lone "[" or "<" at pos can no longer grow into a bracket or marker."""
    if text[pos] == "[":
        return _OPEN_BRACKET.match(text, pos).end() < len(text)
    rest = text[pos:]
    return not any(marker.startswith(rest) for marker in MARKERS)


class Lexer:
    """Incremental splitter: `feed` pieces, `finish` at the end of the text."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._pending = ""

    def feed(self, piece: str) -> None:
        pending = self._pending
        if not pending.startswith(("[", "<")) and not _ENDS_A_WORD.search(piece):
            self._pending = pending + piece  # the word being written goes on: nothing is final yet
            return
        text = pending + piece
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
        self._pending = text[pos:]

    def finish(self) -> None:
        """End of text: whatever is pending is final."""
        text, self._pending = self._pending, ""
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
