"""The database look-up of UBAR's evaluator (``queryJsons``), on todrl's copy of the MultiWOZ tables.

It differs from todrl's own query in ways that move the legacy numbers: an
exact ``name`` in the constraints returns that venue alone, whatever else they
say; values are compared exactly after UBAR's cleaning (`legacy_text`); a time
is read by splitting at ":" and ``int()``, so "17 : 00" and "18 :00" parse
while "1700" or "after 17:00" match no train; the time filter is inverted
(``leave`` keeps trains leaving at or *before* the time, ``arrive`` those
arriving at or *after* it); a slot the table lacks matches nothing; booking
slots and "don't care" constrain nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from todrl.data.db import MultiWozDB
from todrl.evaluate.legacy_text import clean_value

VENUE_DOMAINS = ("restaurant", "hotel", "attraction", "train")
"""Domains whose offers the legacy evaluator checks against the goal."""

_COLUMNS = {"duration": "time"}
"""todrl's column names -> UBAR's, where they differ (both call arrival and departure times arrive / leave)."""

_BOOKING_SLOTS = {"restaurant": ("people", "stay", "day", "time"), "hotel": ("people", "stay", "day")}
_UNCONSTRAINED = frozenset({"don't care", "do n't care", "dont care", "not mentioned", "dontcare", ""})
_NO_VALUE = frozenset({"not mentioned", ""})

Constraints = Mapping[str, str]


class LegacyDatabase:
    """Venue names (train ids for trains) matching a domain's constraints, as UBAR's ``queryJsons`` returns them."""

    def __init__(self, db: MultiWozDB, skip_none: bool = False) -> None:
        self.tables = {domain: _Table([_clean_row(domain, row) for row in db.query(domain, {})]) for domain in VENUE_DOMAINS}
        self.skip_none = skip_none
        """MTTOD also ignores the value "none"."""
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, ...]] = {}

    def venues(self, domain: str, constraints: Constraints) -> tuple[str, ...]:
        """Matching venues in database order; () for a domain without venues or without any value set."""
        key = (domain, tuple(constraints.items()))
        if key not in self._cache:
            self._cache[key] = self._query(domain, constraints) if domain in self.tables else ()
        return self._cache[key]

    def spelled(self, domain: str, slot: str, value: str) -> bool:
        """Whether ``value`` is a cell of that column as UBAR's processed database spells it."""
        table = self.tables.get(domain)
        return table is not None and value in table.index.get(slot, {})

    def _query(self, domain: str, constraints: Constraints) -> tuple[str, ...]:
        ignored = _NO_VALUE | {"none"} if self.skip_none else _NO_VALUE
        if all(value in ignored for value in constraints.values()):
            return ()
        table = self.tables[domain]
        name = constraints.get("name")
        if name is not None and name in table.names:
            return (name,)
        skipped = _UNCONSTRAINED | {"none"} if self.skip_none else _UNCONSTRAINED
        rows: set[int] | None = None
        for slot, value in constraints.items():
            if slot in ("name", "people", "stay") + _BOOKING_SLOTS.get(domain, ()) or value in skipped:
                continue
            matching = table.matching(slot, "yes" if value == "free" else value)
            rows = matching if rows is None else rows & matching
        numbers = range(len(table.rows)) if rows is None else sorted(rows)
        return tuple(table.rows[n]["id" if domain == "train" else "name"] for n in numbers)


def _clean_row(domain: str, row: Mapping[str, object]) -> dict[str, str]:
    """A row as UBAR's processed database holds it: every text cell cleaned and tokenized."""
    return {
        _COLUMNS.get(column, column): clean_value(domain, _COLUMNS.get(column, column), value, always_tokenize=True)
        for column, value in row.items()
        if isinstance(value, str)
    }


class _Table:
    """One domain's cleaned rows, indexed by exact value and, for times, by minutes."""

    def __init__(self, rows: list[dict[str, str]]) -> None:
        self.rows = rows
        self.names = frozenset(row["name"] for row in rows if "name" in row)
        self.index: dict[str, dict[str, set[int]]] = {}
        for number, row in enumerate(rows):
            for column, value in row.items():
                self.index.setdefault(column, {}).setdefault(value, set()).add(number)
        self.minutes = {
            column: [(n, _minutes(row[column])) for n, row in enumerate(rows) if column in row]
            for column in ("arrive", "leave")
        }
        self._times: dict[tuple[str, str], set[int]] = {}

    def matching(self, slot: str, value: str) -> set[int]:
        """Rows that hold ``slot`` and fit ``value``: equal, or for times the inverted filter; none if unreadable."""
        if slot not in ("arrive", "leave"):
            return self.index.get(slot, {}).get(value, set())
        if (slot, value) not in self._times:
            self._times[slot, value] = self._fitting_times(slot, value)
        return self._times[slot, value]

    def _fitting_times(self, slot: str, value: str) -> set[int]:
        try:
            wanted = _minutes(value)
        except ValueError:
            return set()
        if slot == "arrive":
            return {n for n, time in self.minutes[slot] if wanted <= time}
        return {n for n, time in self.minutes[slot] if wanted >= time}


def _minutes(value: str) -> int:
    """UBAR's reading of a time: split at ":" and ``int()`` both parts, so "17 : 00" is 17:00 and "1700" fails."""
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)
