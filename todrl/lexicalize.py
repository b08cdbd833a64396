"""Delexicalized responses -> text a person can read, filled from the rows the generated belief state selects.

A policy writes ``[value_phone]`` because the corpus it learned from hides the
values; a person talking to it needs the number. MultiWOZ replies are filled
from the official database (queried with the generated state, names matched
fuzzily as the standard evaluator does), In-Car replies from the dialogue's own
knowledge base. The k-th ``[value_<slot>]`` of a reply takes row k, so "[value_name]
and [value_name]" names two venues and each name keeps its own address. A
placeholder with no value stays in the text and is listed in ``unfilled``,
never dropped: the person sees what the policy could not back with data.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from todrl.data.db import DB_DOMAINS, MultiWozDB, fuzzy_form, similar
from todrl.data.errors import DataError
from todrl.data.normalize import DOMAINS
from todrl.data.records import BeliefState, DialogueAct

PLACEHOLDER = re.compile(r"\[value_([a-z_]+)\]")

BOOKABLE: tuple[str, ...] = ("restaurant", "hotel", "train")
"""Domains whose bookings carry a reference number."""

_REFERENCE_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_TEMPERATURE = re.compile(r"\d+f")
_MILES = re.compile(r"\d+(?:\.\d+)?")

ValueOf = Callable[[str, int], "str | None"]
"""(slot, occurrence of that slot in the reply) -> its value, or None when there is none."""


@dataclass
class Lexicalized:
    """A filled reply, what could not be filled, and what the database said."""

    text: str
    unfilled: list[str] = field(default_factory=list)
    """Placeholders left in `text`, in order of appearance."""
    db: dict[str, dict[str, Any]] = field(default_factory=dict)
    """domain -> {"matches": number of rows the state selects, "entity": the first of them or None}."""


def fill(response: str, value_of: ValueOf) -> tuple[str, list[str]]:
    """Replace each placeholder by `value_of(slot, k)` (k counts earlier placeholders of that slot)."""
    seen: dict[str, int] = {}
    unfilled: list[str] = []

    def replace(match: re.Match[str]) -> str:
        slot = match.group(1)
        value = value_of(slot, seen.get(slot, 0))
        seen[slot] = seen.get(slot, 0) + 1
        if value is None:
            unfilled.append(match.group(0))
            return match.group(0)
        return value

    return PLACEHOLDER.sub(replace, response), unfilled


def booking_reference(domain: str, constraints: Mapping[str, str]) -> str:
    """An 8-character reference derived from the booking itself, so that a replayed dialogue gets the same one."""
    return "".join(_REFERENCE_ALPHABET[byte % len(_REFERENCE_ALPHABET)] for byte in _digest(domain, constraints)[:8])


def _digest(domain: str, constraints: Mapping[str, str]) -> bytes:
    return hashlib.sha256(json.dumps([domain, sorted(constraints.items())]).encode()).digest()


class MultiWozLexicalizer:
    """``MultiWozLexicalizer(db_dir)(response, belief_state, dialogue_act)`` over the official database files.

    The reply's domain comes first from its act, then from the state, latest
    domain first. Booking slots (people, day, time, stay) and values the state
    holds but rows lack come from the state; ``[value_choice]`` is the number
    of matching rows; ``[value_reference]`` is made up from the booking;
    ``[value_car]`` draws from the taxi table's colours and makes.
    """

    def __init__(self, db_dir: str | Path) -> None:
        self.db = MultiWozDB(db_dir)
        self.taxi = _taxi_table(Path(db_dir) / "taxi_db.json")

    def __call__(self, response: str, belief_state: BeliefState, dialogue_act: DialogueAct | None = None) -> Lexicalized:
        domains = _domain_order(belief_state, dialogue_act or {})
        rows = {d: self._rows(d, belief_state.get(d, {})) for d in domains if d in DB_DOMAINS}

        def value_of(slot: str, k: int) -> str | None:
            if slot == "choice":
                return next((str(len(found)) for found in rows.values()), None)
            if slot == "reference":
                domain = next((d for d in domains if d in BOOKABLE), None)
                return None if domain is None else booking_reference(domain, belief_state.get(domain, {}))
            if "taxi" in domains and (slot == "car" or (slot == "phone" and domains[0] == "taxi")):
                return self._taxi(belief_state.get("taxi", {}), slot)
            for domain in domains:
                found = rows.get(domain, [])
                value = _column(domain, found[k], slot) if k < len(found) else None
                value = value or belief_state.get(domain, {}).get(slot)
                if value:
                    return value
            return None

        text, unfilled = fill(response, value_of)
        db = {d: {"matches": len(found), "entity": found[0] if found else None} for d, found in rows.items()}
        return Lexicalized(text, unfilled, db)

    def _rows(self, domain: str, constraints: Mapping[str, str]) -> list[dict[str, Any]]:
        found = self.db.query(domain, constraints, fuzzy=True)
        if domain == "train":  # the train a person would take: first to leave after, or last to arrive before
            by = "arrive" if "arrive" in constraints and "leave" not in constraints else "leave"
            found.sort(key=lambda row: row.get(by, ""), reverse=by == "arrive")
        return found

    def _taxi(self, constraints: Mapping[str, str], slot: str) -> str | None:
        """The booked car and its driver's number, made up (the table has none) but fixed by the booking."""
        seed = int.from_bytes(_digest("taxi", constraints), "big")
        if slot == "phone":
            return f"07{seed % 10**9:09d}"
        colours, makes = self.taxi
        if not colours or not makes:
            return None
        return f"{colours[seed % len(colours)]} {makes[(seed // len(colours)) % len(makes)]}"


def _domain_order(belief_state: BeliefState, dialogue_act: DialogueAct) -> list[str]:
    """Domains a reply may speak of: its act's, then the state's from the latest mentioned."""
    named = [d for d in dialogue_act if d in DOMAINS] + [d for d in reversed(belief_state) if d in DOMAINS]
    return list(dict.fromkeys(named))


def _column(domain: str, row: Mapping[str, Any], slot: str) -> str | None:
    """A row's value for a placeholder: ``price`` is the price range of venues and the fare of trains and
    attractions; a train's ``time`` is its journey time."""
    if slot == "price" and domain in ("restaurant", "hotel"):
        slot = "pricerange"
    elif slot == "time" and domain == "train":
        slot = "duration"
    value = row.get(slot)
    return value if isinstance(value, str) and value != "?" else None


def _taxi_table(path: Path) -> tuple[list[str], list[str]]:
    """Colours and makes of ``taxi_db.json`` (one object of lists); none when the file is absent."""
    if not path.is_file():
        return [], []
    try:
        rows = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DataError(path, f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}") from error
    table = rows[0] if isinstance(rows, list) and rows and isinstance(rows[0], dict) else {}
    return [str(c).lower() for c in table.get("taxi_colors", [])], [str(m).lower() for m in table.get("taxi_types", [])]


class InCarLexicalizer:
    """``InCarLexicalizer(kb_rows)(response, belief_state)`` over one dialogue's knowledge base (`load_incar_kbs`).

    Rows are kept when they agree with the state's values on their columns
    (plurals and containment allowed: "gas stations" keeps "gas station"); a
    value no row has ("nearest") constrains nothing. Places are ordered nearest
    first. Weather reads the state's day ("today" is the KB's today) and fills
    ``[value_weather_attribute]`` from that day, the k-th one from k days later,
    and ``[value_temperature]`` with the day's range, or low then high when the
    reply has two.
    """

    def __init__(self, rows: Sequence[Mapping[str, str]]) -> None:
        self.rows = [dict(row) for row in rows]

    def __call__(self, response: str, belief_state: BeliefState, dialogue_act: DialogueAct | None = None) -> Lexicalized:
        domain = _incar_domain(self.rows, belief_state)
        constraints = belief_state.get(domain, {}) if domain else {}
        found = _matching(self.rows, constraints)
        if domain == "navigate":
            found.sort(key=_miles)
        temperatures = len(re.findall(r"\[value_temperature\]", response))

        def value_of(slot: str, k: int) -> str | None:
            if domain == "weather" and found and slot in ("weather_attribute", "temperature", "date"):
                return _weather(found[0], constraints.get("date", ""), slot, k, temperatures)
            value = found[k].get(slot) if k < len(found) else None
            return value or constraints.get(slot)

        text, unfilled = fill(response, value_of)
        db = {domain: {"matches": len(found), "entity": found[0] if found else None}} if domain else {}
        return Lexicalized(text, unfilled, db)


def _incar_domain(rows: Sequence[Mapping[str, str]], belief_state: BeliefState) -> str | None:
    columns = {column for row in rows for column in row}
    if "poi" in columns:
        return "navigate"
    if "location" in columns:
        return "weather"
    if "event" in columns:
        return "schedule"
    return next(iter(belief_state), None)


def _matching(rows: Sequence[Mapping[str, str]], constraints: Mapping[str, str]) -> list[dict[str, str]]:
    found = [dict(row) for row in rows]
    for slot, value in constraints.items():
        narrowed = [row for row in found if slot in row and _agrees(value, row[slot])]
        if narrowed:
            found = narrowed
    return found


def _agrees(value: str, cell: str) -> bool:
    def singular(text: str) -> str:
        return " ".join(word[:-1] if word.endswith("s") and len(word) > 3 else word for word in fuzzy_form(text).split())

    return similar(singular(value), singular(cell))


def _miles(row: Mapping[str, str]) -> float:
    match = _MILES.search(row.get("distance", ""))
    return float(match.group(0)) if match else float("inf")


def _weather(row: Mapping[str, str], date: str, slot: str, k: int, temperatures: int) -> str | None:
    today = row.get("today", "monday")
    day = next((d for d in _WEEKDAYS if d in date.split()), None)
    if day is None:  # "today", "now", "this week": the KB's today; "tomorrow": the day after
        offset = 1 if date.startswith("tomorrow") else 0
        day = _WEEKDAYS[(_WEEKDAYS.index(today) + offset) % 7] if today in _WEEKDAYS else today
    if slot == "date":
        return day
    if slot == "weather_attribute":
        day = _WEEKDAYS[(_WEEKDAYS.index(day) + k) % 7] if day in _WEEKDAYS else day
    forecast = row.get(day, "")
    if slot == "weather_attribute":
        return forecast.split(" , ")[0] or None
    low_high = _TEMPERATURE.findall(forecast)
    if len(low_high) != 2:
        return None
    if temperatures == 1:
        return f"{low_high[0][:-1]}-{low_high[1]}"
    return low_high[k] if k < 2 else None
