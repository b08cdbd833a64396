"""Venue look-ups exactly as the standard MultiWOZ evaluator does them.

Which venues a belief state "offers" decides Inform, and small differences in
matching move published scores by up to a point: the standard evaluator
compares names, foods and stations by fuzzy *partial* ratio (the best
alignment of the shorter string inside the longer, at least 90 of 100), every
other column by exact equality, times in minutes (an unreadable time counts
as midnight), and skips "?" cells.  todrl's `MultiWozDB` supplies the rows;
its own fuzzy mode is tuned for the DB pointer, not for reproducing scores.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from todrl.data.db import MultiWozDB
from todrl.evaluate.fuzzy import partial_ratio
from todrl.evaluate.normalization import canonical_value, time_to_minutes

SEARCH_COLUMNS: dict[str, frozenset[str]] = {
    "restaurant": frozenset({"address", "area", "food", "id", "name", "phone", "postcode", "pricerange", "type"}),
    "hotel": frozenset(
        {"address", "area", "id", "internet", "name", "parking", "phone", "postcode", "pricerange", "stars", "type"}
    ),
    "attraction": frozenset({"address", "area", "id", "name", "phone", "postcode", "pricerange", "type"}),
    "train": frozenset({"arrive", "day", "departure", "destination", "duration", "leave", "price"}),
}
"""State slots that filter each table (descriptions, locations, opening hours and booking slots do not)."""

FUZZY_COLUMNS: dict[str, frozenset[str]] = {
    "restaurant": frozenset({"name", "food"}),
    "hotel": frozenset({"name"}),
    "attraction": frozenset({"name"}),
    "train": frozenset({"departure", "destination"}),
}
FUZZY_MIN = 90
DONTCARE_VALUES = frozenset({"dontcare", "not mentioned", "don't care", "dont care", "do n't care", "do not care"})


def _could_match(cell: Counter[str], value: Counter[str], shorter: int) -> bool:
    """Cheap exact bound: characters shared by the whole strings cap every window's ratio."""
    return 100 * sum((cell & value).values()) / shorter >= FUZZY_MIN - 0.5


def _index(rows: list[dict[str, object]], columns: frozenset[str]) -> dict[str, dict[str, frozenset[int]]]:
    """column -> cell value -> numbers of the rows holding it."""
    index: dict[str, dict[str, set[int]]] = {column: {} for column in columns}
    for number, row in enumerate(rows):
        for column in columns:
            cell = row.get(column)
            if isinstance(cell, str):
                index[column].setdefault(cell, set()).add(number)
    return {column: {cell: frozenset(numbers) for cell, numbers in cells.items()} for column, cells in index.items()}


class VenueMatcher:
    """``matcher(domain, state_of_domain)`` -> ids of the matching venues (train ids for trains).

    Results are cached per distinct state and per distinct fuzzy value, so a
    predictions file costs a few hundred real comparisons.
    """

    def __init__(self, db: MultiWozDB) -> None:
        self._rows = {domain: db.query(domain, {}) for domain in SEARCH_COLUMNS}
        self._cache: dict[tuple[str, tuple[tuple[str, str], ...]], frozenset[str]] = {}
        self._fuzzy: dict[tuple[str, str, str], frozenset[int]] = {}
        self._letters: dict[tuple[str, str], list[Counter[str]]] = {}
        self._exact: dict[str, dict[str, dict[str, frozenset[int]]]] = {
            domain: _index(rows, SEARCH_COLUMNS[domain] - FUZZY_COLUMNS[domain]) for domain, rows in self._rows.items()
        }
        self._minutes = {
            (domain, slot): [time_to_minutes(row.get(slot, "")) for row in rows]
            for domain, rows in self._rows.items()
            for slot in ("arrive", "leave")
        }

    def __call__(self, domain: str, constraints: Mapping[str, str]) -> frozenset[str]:
        key = (domain, tuple(sorted(constraints.items())))
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._search(domain, constraints)
        return found

    def _search(self, domain: str, constraints: Mapping[str, str]) -> frozenset[str]:
        columns = SEARCH_COLUMNS.get(domain)
        if columns is None:
            return frozenset()
        rows = self._rows[domain]
        allowed = frozenset(range(len(rows)))
        times = []
        for slot, raw in constraints.items():
            if slot not in columns or raw in DONTCARE_VALUES:
                continue
            value = canonical_value(slot, raw)
            if slot in ("arrive", "leave"):
                times.append((slot, time_to_minutes(value)))
            elif slot in FUZZY_COLUMNS[domain]:
                allowed &= self._fuzzy_rows(domain, slot, value)
            else:
                index = self._exact[domain].get(slot, {})
                allowed &= index.get(value, frozenset()) | index.get("?", frozenset())
        for slot, limit in times:  # after the indexed filters, which leave few rows
            minutes = self._minutes[domain, slot]
            if slot == "leave":
                allowed = frozenset(n for n in allowed if minutes[n] >= limit or rows[n].get(slot) == "?")
            else:
                allowed = frozenset(n for n in allowed if minutes[n] <= limit or rows[n].get(slot) == "?")
        return frozenset(str(rows[n]["id"]) for n in allowed)

    def _fuzzy_rows(self, domain: str, slot: str, value: str) -> frozenset[int]:
        key = (domain, slot, value)
        found = self._fuzzy.get(key)
        if found is None:
            wanted = Counter(value)
            cells = [row.get(slot, "") for row in self._rows[domain]]
            if (domain, slot) not in self._letters:
                self._letters[domain, slot] = [Counter(cell) for cell in cells]
            letters = self._letters[domain, slot]
            found = self._fuzzy[key] = frozenset(
                n
                for n, cell in enumerate(cells)
                if cell == "?"
                or (
                    _could_match(letters[n], wanted, min(len(value), len(cell)) or 1)
                    and partial_ratio(cell, value) >= FUZZY_MIN
                )
            )
        return found
