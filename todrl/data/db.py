"""The MultiWOZ database: venue and train look-ups by belief state, and the DB-result pointer.

Evaluators query it once per turn and domain for thousands of turns, so each
table is indexed by its exact-match keys at load time and query results are
cached.  Rows come back with the shared slot names (``arriveBy`` -> ``arrive``,
``leaveAt`` -> ``leave``, ``trainID`` -> ``id``, ``entrance fee`` -> ``price``,
``openhours`` -> ``open``) and lower-cased text, so a ``[value_<slot>]``
placeholder can be filled straight from a row.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import lru_cache
from pathlib import Path
from typing import Any

from todrl.data.archive import read_file_json
from todrl.data.errors import DataError
from todrl.data.normalize import DONTCARE, DOMAINS, normalize_time, normalize_value

DB_DOMAINS: tuple[str, ...] = ("restaurant", "hotel", "attraction", "train", "hospital", "police")
"""Domains with an entity table; taxi has none (its file lists car colours and brands)."""

POINTERS: tuple[str, ...] = ("[db_nores]", "[db_0]", "[db_1]", "[db_2]", "[db_3]")
"""``[db_nores]``: the domain has no table (taxi) or there is no domain; then 0, 1, 2-3, >3 matches."""

TRAIN_BUCKETS = (0, 2, 5)
"""Upper bounds of ``[db_0]``..``[db_2]`` for trains (0 / 1-2 / 3-5 / >5): a route and day alone match dozens."""
VENUE_BUCKETS = (0, 1, 3)
"""Upper bounds of ``[db_0]``..``[db_2]`` for every other table (0 / 1 / 2-3 / >3)."""

FUZZY_SLOTS = frozenset({"name", "food", "departure", "destination"})
"""Free-text columns that ``fuzzy=True`` matches by similarity (the standard evaluator's choice)."""

FUZZY_THRESHOLD = 0.9
"""Minimum character similarity (difflib ratio, spaces ignored) for a fuzzy match of two names."""

_COLUMN_NAMES = {"arriveby": "arrive", "leaveat": "leave", "trainid": "id", "entrance fee": "price", "openhours": "open"}
_TIME_COLUMNS = frozenset({"arrive", "leave"})
_UNKNOWN = "?"
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")
_NOT_WORD = re.compile(r"[^a-z0-9 ]+")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})")


def exact_key(value: str) -> str:
    """What exact matching compares: letters and digits only ("saint john's college" == "saint johns college")."""
    return _NOT_ALNUM.sub("", value.lower())


def fuzzy_form(value: str) -> str:
    """What fuzzy matching compares: words without punctuation, possessives or "the"."""
    text = value.lower().replace("&", " and ").replace(" '", "'").replace("'", "")
    return " ".join(word for word in _NOT_WORD.sub(" ", text).split() if word != "the")


def similar(query: str, name: str) -> bool:
    """Fuzzy match of two `fuzzy_form` strings: equal without spaces, one inside the other word by word,
    or at most a few edits apart ("caffee uno" ~ "caffe uno")."""
    if not query or not name:
        return False
    compact_query, compact_name = query.replace(" ", ""), name.replace(" ", "")
    if compact_query == compact_name or f" {query} " in f" {name} " or f" {name} " in f" {query} ":
        return True
    matcher = SequenceMatcher(None, compact_query, compact_name, autojunk=False)
    return matcher.quick_ratio() >= FUZZY_THRESHOLD and matcher.ratio() >= FUZZY_THRESHOLD


def _minutes(clock: str) -> int | None:
    """Minutes since midnight of an hh:mm cell; trains arriving after midnight say "24:08"."""
    match = _CLOCK.fullmatch(clock)
    return None if match is None else int(match.group(1)) * 60 + int(match.group(2))


@dataclass
class _Table:
    """One domain's rows with everything a query compares precomputed."""

    rows: list[dict[str, Any]]
    index: dict[str, dict[str, list[int]]]
    """column -> exact key -> row numbers; key "" holds the rows whose value is unknown ("?")."""
    fuzzy: dict[str, list[str]]
    minutes: dict[str, list[int | None]]

    @classmethod
    def from_rows(cls, rows: list[dict[str, Any]]) -> _Table:
        index: dict[str, dict[str, list[int]]] = {}
        for number, row in enumerate(rows):
            for column, value in row.items():
                if isinstance(value, str):
                    key = "" if value == _UNKNOWN else exact_key(value)
                    index.setdefault(column, {}).setdefault(key, []).append(number)
        fuzzy = {c: [fuzzy_form(row.get(c, "")) for row in rows] for c in index if c in FUZZY_SLOTS}
        minutes = {c: [_minutes(row.get(c, "")) for row in rows] for c in index if c in _TIME_COLUMNS}
        return cls(rows, index, fuzzy, minutes)


class MultiWozDB:
    """``MultiWozDB(db_dir)`` over the official ``<domain>_db.json`` files (todrl's sample has its own).

    Constraints are belief-state slots with internal names; "dontcare", empty
    values and slots that are not columns (booking slots such as ``people``)
    are ignored, and a row whose value is unknown ("?") is not filtered on
    that column.  Trains: ``leave`` keeps trains leaving at or after the
    value, ``arrive`` those arriving at or before it; an unparseable time
    constrains nothing.
    """

    def __init__(self, db_dir: str | Path) -> None:
        self.db_dir = Path(db_dir)
        self._tables = {domain: _Table.from_rows(_load_rows(self.db_dir / f"{domain}_db.json")) for domain in DB_DOMAINS}
        self._match = lru_cache(maxsize=100_000)(self._match_uncached)

    def query(self, domain: str, constraints: Mapping[str, str], fuzzy: bool = False) -> list[dict[str, Any]]:
        """Rows of ``domain`` that satisfy ``constraints`` (copies, in database order); [] for taxi."""
        table = self._table(domain)
        if table is None:
            return []
        return [dict(table.rows[number]) for number in self._match(domain, _freeze(constraints), fuzzy)]

    def count(self, domain: str, constraints: Mapping[str, str], fuzzy: bool = False) -> int:
        """Number of matching rows, without copying them."""
        return 0 if self._table(domain) is None else len(self._match(domain, _freeze(constraints), fuzzy))

    def pointer(self, domain: str, constraints: Mapping[str, str], fuzzy: bool = False) -> str:
        """DB-result token for the model input: one of `POINTERS` (buckets in `VENUE_BUCKETS`, `TRAIN_BUCKETS`)."""
        if domain not in DB_DOMAINS:
            return POINTERS[0]
        matches = self.count(domain, constraints, fuzzy)
        bounds = TRAIN_BUCKETS if domain == "train" else VENUE_BUCKETS
        return POINTERS[1 + next((i for i, bound in enumerate(bounds) if matches <= bound), len(bounds))]

    def _table(self, domain: str) -> _Table | None:
        if domain not in DOMAINS:
            raise ValueError(f"unknown MultiWOZ domain {domain!r}; expected one of {', '.join(DOMAINS)}")
        return self._tables.get(domain)

    def _match_uncached(self, domain: str, constraints: tuple[tuple[str, str], ...], fuzzy: bool) -> tuple[int, ...]:
        table = self._tables[domain]
        candidates: set[int] | None = None
        tests: list[Callable[[int], bool]] = []
        for slot, raw_value in constraints:
            if slot not in table.index:
                continue
            value = normalize_value(slot, raw_value)
            if value is None or value == DONTCARE:
                continue
            if slot in _TIME_COLUMNS:
                limit = _minutes(normalize_time(value) or "")
                if limit is not None:
                    tests.append(_time_test(table.minutes[slot], limit, latest=slot == "arrive"))
            elif fuzzy and slot in FUZZY_SLOTS:
                tests.append(_fuzzy_test(table.fuzzy[slot], table.index[slot].get("", []), fuzzy_form(value)))
            else:
                keys = table.index[slot]
                allowed = set(keys.get(exact_key(value), ())) | set(keys.get("", ()))
                candidates = allowed if candidates is None else candidates & allowed
        numbers = sorted(candidates) if candidates is not None else range(len(table.rows))
        return tuple(n for n in numbers if all(test(n) for test in tests))


def _time_test(minutes: list[int | None], limit: int, latest: bool) -> Callable[[int], bool]:
    if latest:
        return lambda n: minutes[n] is None or minutes[n] <= limit
    return lambda n: minutes[n] is None or minutes[n] >= limit


def _fuzzy_test(forms: list[str], unknown: list[int], query: str) -> Callable[[int], bool]:
    unknown_rows = frozenset(unknown)
    return lambda n: n in unknown_rows or similar(query, forms[n])


def _freeze(constraints: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((slot, str(value)) for slot, value in constraints.items()))


def _load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(path, "database file not found")
    _, raw = read_file_json(path)
    if not isinstance(raw, list) or not all(isinstance(row, dict) for row in raw):
        raise DataError(path, "expected a JSON list of row objects")
    return [{_column_name(k): _cell(v) for k, v in row.items()} for row in raw]


def _column_name(raw: str) -> str:
    name = raw.strip().lower()
    return _COLUMN_NAMES.get(name, name)


def _cell(value: Any) -> Any:
    if isinstance(value, str):
        return " ".join(value.lower().split())
    return str(value) if isinstance(value, int) else value
