"""MultiWOZ vocabulary and normalization of text, slot names and slot values.

One slot vocabulary serves three purposes at once: slots in dialogue acts, the
``[value_<slot>]`` placeholders of delexicalized responses, and the slots a user
requests.  The generation reward matches a user's requests against the act and
placeholders the model writes, so the three must never drift apart.  The
placeholder names are those of the standard MultiWOZ evaluator's prediction
files (``[value_name]``, ``[value_price]``, ...); like DAMD/UBAR/MTTOD, every
kind of price (price range, ticket, entrance fee) is ``price`` and a train's
travel time is ``time``.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rewards.spans import MULTIWOZ_SLOTS

DOMAINS: tuple[str, ...] = ("restaurant", "hotel", "attraction", "train", "taxi", "police", "hospital")

INFORMABLE_SLOTS: dict[str, tuple[str, ...]] = {domain: MULTIWOZ_SLOTS[domain] for domain in DOMAINS}
"""Belief-state slots per domain: search constraints and booking slots (UBAR's informable slots)."""

PLACEHOLDER_SLOTS: tuple[str, ...] = (
    "name", "choice", "area", "type", "price", "reference", "phone", "arrive", "id", "food", "leave",
    "address", "postcode", "day", "car", "stars", "time", "departure", "destination", "people", "stay",
)  # fmt: skip
"""Slots that appear as ``[value_<slot>]`` in delexicalized responses."""

SLOTS: tuple[str, ...] = PLACEHOLDER_SLOTS + ("parking", "internet", "open")
"""The shared slot vocabulary of acts, placeholders and requests; parking/internet
answers are yes/no and opening hours are free text, so those three stay lexical."""

REQUESTABLE_SLOTS: tuple[str, ...] = (
    "address", "phone", "postcode", "reference", "id", "price", "time", "area", "type", "food",
    "stars", "parking", "internet", "leave", "arrive", "car",
)  # fmt: skip
"""Slots users ask for (user ``*-Request`` acts and goal ``reqt`` lists)."""

ACTS: tuple[str, ...] = (
    "inform", "recommend", "select", "nooffer", "offerbook", "offerbooked", "nobook", "request",
    "reqmore", "welcome", "greet", "thank", "bye",
)  # fmt: skip
"""Dialogue-act types in the order they are written within a domain."""

DONTCARE = "dontcare"

ACT_SLOT_NAMES: dict[str, str] = {
    "addr": "address", "post": "postcode", "ref": "reference", "fee": "price", "ticket": "price",
    "depart": "departure", "dest": "destination", "price": "price", "id": "id", "leave": "leave",
    "arrive": "arrive", "time": "time", "car": "car", "phone": "phone", "choice": "choice", "name": "name",
    "area": "area", "type": "type", "food": "food", "stars": "stars", "day": "day", "people": "people",
    "stay": "stay", "parking": "parking", "internet": "internet", "open": "open",
}  # fmt: skip
"""MultiWOZ 2.0/2.1 act-slot abbreviations (lower-cased) -> shared vocabulary."""

_STATE_SLOT_NAMES = {
    "leaveat": "leave", "arriveby": "arrive",
    "bookday": "day", "bookpeople": "people", "bookstay": "stay", "booktime": "time",
}  # fmt: skip
"""MultiWOZ 2.1 camel case and 2.2 names (spaces removed first: "leave at", "price range") -> todrl's names."""
_GOAL_REQUEST_NAMES = {
    "car type": "car", "entrance fee": "price", "trainid": "id", "leaveat": "leave", "arriveby": "arrive",
    "duration": "time", "pricerange": "price", "price range": "price", "post": "postcode", "ref": "reference",
    "addr": "address",
}  # fmt: skip
_EMPTY_VALUES = {"", "not mentioned", "none"}
_DONTCARE_VALUES = {"dontcare", "dont care", "don't care", "do n't care", "do not care", "does not matter", "any"}
TIME_SLOTS = frozenset({"leave", "arrive", "time"})

_PLACEHOLDER = re.compile(r"(\[[a-z_]+\])")
_TIME = re.compile(r"^(\d{1,2}):?(\d{2})$")
_SPACED_COLON = re.compile(r"\s*:\s*")
"""Tokenized clock times ("15 : 00", "12 :30"), as several systems write them."""


@lru_cache(maxsize=4096)
def state_slot_name(raw: str) -> str:
    """Belief-state slot name in any MultiWOZ spelling -> todrl's (``leaveAt``, ``leave at`` -> ``leave``).

    The one map for readers and evaluators alike: where they differed, a system writing "leave at" had every
    time it tracked scored as a wrong slot.
    """
    name = "".join(raw.lower().split())
    return _STATE_SLOT_NAMES.get(name, name)


def requestable_slot_name(raw: str) -> str:
    """Goal ``reqt`` entry -> shared vocabulary (``entrance fee`` -> ``price``, ``trainID`` -> ``id``)."""
    name = raw.strip().lower()
    return _GOAL_REQUEST_NAMES.get(name, name)


def normalize_time(value: str) -> str | None:
    """Parse the time spellings annotators used ("9:30", "1715", "5:45pm", "after 15:45", "8 pm") to hh:mm.

    Returns None when the text holds no time ("after lunch").
    """
    text = _SPACED_COLON.sub(":", value.strip().lower().replace(".", ""))
    for prefix in ("after", "by", "before", "around", "at"):
        if text.startswith(prefix + " "):
            text = text[len(prefix) + 1 :].strip()
    suffix = ""
    for marker in ("am", "pm"):
        if text.endswith(marker):
            text, suffix = text[: -len(marker)].strip(), marker
    if text.isdigit() and len(text) <= 2:
        hours, minutes = int(text), 0
    else:
        match = _TIME.match(text)
        if match is None:
            return None
        hours, minutes = int(match.group(1)), int(match.group(2))
    if suffix == "pm" and hours < 12:
        hours += 12
    elif suffix == "am" and hours == 12:
        hours = 0
    if hours > 23 or minutes > 59:
        return None
    return f"{hours:02d}:{minutes:02d}"


@lru_cache(maxsize=65536)
def normalize_value(slot: str, value: str) -> str | None:
    """Canonical belief-state value, or None when the annotation means "no value".

    Several alternatives ("hotel|guesthouse") keep the first, parking/internet
    "free" means "yes", times become hh:mm (unparseable times are kept as written).
    """
    text = " ".join(str(value).replace("\u2019", "'").lower().split())
    if "|" in text:
        text = text.split("|", 1)[0].strip()
    if text in _EMPTY_VALUES:
        return None
    if text in _DONTCARE_VALUES:
        return DONTCARE
    if slot in ("parking", "internet") and text == "free":
        return "yes"
    if slot in TIME_SLOTS:
        return normalize_time(text) or text
    return text


_PUNCTUATION = re.compile(r'\.{2,}|[?!;()"#&/]|(?<!\d)[,:.]|[,:.](?!\d)')
"""Split off everywhere, except a comma, colon or period between digits ("2,828", "17:15", "13.20")."""
_CLITIC = re.compile(r"(\w)(n't|'(?:s|m|d|ll|re|ve))\b")
_DIGIT = re.compile(r"\d")
_CLOCK_12H = re.compile(r"\b(\d{1,2})(?::(\d{2}))? ?([ap])(?:\. ?m\.|m\b)")
_CLOCK_H_MM = re.compile(r"(?<![\d:])(\d):(\d{2})\b")


def _clock_24h(match: re.Match[str]) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2) or 0)
    if hours > 12 or minutes > 59:
        return match.group(0)
    if match.group(3) == "p" and hours < 12:
        hours += 12
    elif match.group(3) == "a" and hours == 12:
        hours = 0
    return f"{hours:02d}:{minutes:02d}"


def _tokenize_words(text: str) -> str:
    if _DIGIT.search(text):
        text = _CLOCK_H_MM.sub(r"0\1:\2", _CLOCK_12H.sub(_clock_24h, text))
    return _CLITIC.sub(r"\1 \2", _PUNCTUATION.sub(r" \g<0> ", text))


def normalize_text(text: str) -> str:
    """Lower-case and tokenize an utterance the way MultiWOZ systems write them.

    Punctuation is split off (but not inside numbers: "13.20", "2,828", "17:15"),
    clitics are split PTB-style ("do n't", "john 's"), clock times become hh:mm
    ("9:30" -> "09:30", "5pm" -> "17:00"), and ``[value_x]`` placeholders pass
    through untouched.  Idempotent, so already-tokenized MultiWOZ text barely changes.
    """
    text = text.replace("\u2019", "'").replace("\u2018", "'").replace("`", "'").lower()
    parts = _PLACEHOLDER.split(text)
    words = [part if index % 2 else _tokenize_words(part) for index, part in enumerate(parts)]
    return " ".join(" ".join(words).split())
