"""Scenarios sampled from the MultiWOZ schema and database (seed 003, Sec. 3.2.1).

A scenario is what one synthetic user wants: its domains, per domain the constraints, requests and booking of a
`Goal`, and the database row that satisfies them. Constraints are read off a real row, so every goal can be met;
booking values come from the schema's categorical values. Complexity is the number of domains and of slot-values:
level k has k domains (at most the five bookable or searchable ones) and more constraints per domain as k grows.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from todrl.data.db import MultiWozDB
from todrl.data.normalize import INFORMABLE_SLOTS, REQUESTABLE_SLOTS, TIME_SLOTS, normalize_value, state_slot_name
from todrl.data.records import Goal

DOMAINS: tuple[str, ...] = ("restaurant", "hotel", "attraction", "train", "taxi")
"""Domains a scenario draws from (hospital and police have one request and no search)."""

LEVELS: tuple[int, ...] = (1, 2, 3)

BOOK_SLOTS: dict[str, tuple[str, ...]] = {"restaurant": ("day", "people", "time"), "hotel": ("day", "people", "stay"),
                                          "train": ("people",)}
SEARCH_SLOTS: dict[str, tuple[str, ...]] = {d: tuple(s for s in INFORMABLE_SLOTS[d] if s not in BOOK_SLOTS.get(d, ()))
                                            for d in DOMAINS if d != "taxi"}
"""Constraints that select a database row (train's day too: it is a column)."""

ANSWERS: dict[str, tuple[str, ...]] = {
    "restaurant": ("address", "phone", "postcode", "price", "area", "food"),
    "hotel": ("address", "phone", "postcode", "price", "area", "stars", "parking", "internet", "type"),
    "attraction": ("address", "phone", "postcode", "price", "area", "type"),
    "train": ("price", "time", "id", "arrive", "leave"),
    "taxi": ("car", "phone"),
}
"""What a user may ask for per domain: database columns (or a booked taxi's car and phone)."""
assert all(set(slots) <= set(REQUESTABLE_SLOTS) for slots in ANSWERS.values())

TIMES: tuple[str, ...] = tuple(f"{h:02d}:{m:02d}" for h in range(8, 22) for m in (0, 15, 30, 45))


@dataclass
class Scenario:
    """One user's task; `entities` holds, per domain, the row the system will offer (taxi: the car it books)."""

    level: int
    goal: dict[str, Goal]
    entities: dict[str, dict[str, str]]
    description: str = ""

    @property
    def domains(self) -> list[str]:
        return list(self.goal)

    def slot_values(self) -> int:
        return sum(len(g.informable) + len(g.book) for g in self.goal.values())


@dataclass
class Ontology:
    """Allowed values per (domain, slot), normalized as the readers normalize: database columns, schema values,
    venue and station names for taxis; time slots take any hh:mm."""

    values: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    categorical: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """Schema `possible_values` per domain and slot (booking days, party sizes, ...)."""
    taxi: dict[str, list[str]] = field(default_factory=dict)
    """Car colours and brands of taxi_db.json."""

    @classmethod
    def read(cls, db: MultiWozDB, schema_path: Path) -> Ontology:
        ontology = cls()
        for service in json.loads(schema_path.read_text()):
            for slot in service["slots"]:
                domain, raw = slot["name"].split("-", 1)
                name = state_slot_name(raw)
                if domain in INFORMABLE_SLOTS and name in INFORMABLE_SLOTS[domain] and slot.get("possible_values"):
                    normalized = [v for v in (normalize_value(name, p) for p in slot["possible_values"]) if v]
                    ontology.categorical.setdefault(domain, {})[name] = list(dict.fromkeys(normalized))
        for domain in ("restaurant", "hotel", "attraction", "train", "hospital"):
            for row in db.query(domain, {}):
                for slot in INFORMABLE_SLOTS[domain]:
                    if isinstance(row.get(slot), str) and row[slot] != "?":
                        ontology.add(domain, slot, row[slot])
        for domain, slots in ontology.categorical.items():
            for slot, values in slots.items():
                for value in values:
                    ontology.add(domain, slot, value)
        places = set().union(*(ontology.values.get(d, {}).get("name", set()) for d in ("restaurant", "hotel", "attraction")))
        places |= ontology.values.get("train", {}).get("departure", set())
        for slot in ("departure", "destination"):
            ontology.values.setdefault("taxi", {})[slot] = set(places)
        taxi = json.loads((db.db_dir / "taxi_db.json").read_text())
        taxi = taxi[0] if isinstance(taxi, list) else taxi
        ontology.taxi = {"colors": list(taxi["taxi_colors"]), "types": list(taxi["taxi_types"])}
        return ontology

    def add(self, domain: str, slot: str, value: str) -> None:
        normalized = normalize_value(slot, value)
        if normalized:
            self.values.setdefault(domain, {}).setdefault(slot, set()).add(normalized)

    def allows(self, domain: str, slot: str, value: str) -> bool:
        if slot in TIME_SLOTS:
            return value in TIMES or (len(value) == 5 and value[2] == ":" and value.replace(":", "").isdigit())
        return value in self.values.get(domain, {}).get(slot, set())


@dataclass
class ScenarioSampler:
    """Draws scenarios of a complexity level; all randomness comes from the `random.Random` passed in."""

    db: MultiWozDB
    ontology: Ontology

    def sample(self, level: int, rng: random.Random) -> Scenario:
        domains = rng.sample(DOMAINS, min(level, len(DOMAINS)))
        domains.sort(key=lambda d: d == "taxi")  # a taxi goes between the places found before it
        goal: dict[str, Goal] = {}
        entities: dict[str, dict[str, str]] = {}
        for domain in domains:
            if domain == "taxi":
                goal[domain], entities[domain] = self._taxi(entities, level, rng)
            else:
                goal[domain], entities[domain] = self._search(domain, level, rng)
        parts = [f"{d} ({', '.join(f'{s} {v}' for s, v in {**g.informable, **g.book}.items())})" for d, g in goal.items()]
        return Scenario(level, goal, entities, "the user wants " + "; then ".join(parts))

    def _search(self, domain: str, level: int, rng: random.Random) -> tuple[Goal, dict[str, str]]:
        row = rng.choice(self.db.query(domain, {}))
        entity = {k: v for k, v in row.items() if isinstance(v, str)}
        if domain == "train":
            leave = rng.random() < 0.5
            slot, limit = ("leave", _earlier(entity["leave"], rng)) if leave else ("arrive", _later(entity["arrive"], rng))
            informable = {"departure": entity["departure"], "destination": entity["destination"], "day": entity["day"],
                          slot: limit}
        else:
            known = [s for s in SEARCH_SLOTS[domain] if s != "name" and entity.get(s, "?") != "?"]
            wanted = min(len(known), rng.randint(1, 1 + level))
            chosen = rng.sample(known, wanted) if known else []
            if not chosen or rng.random() < 0.15:  # some users ask for a venue by name
                chosen = ["name"]
            informable = {s: normalize_value(s, entity[s]) or entity[s] for s in chosen}
        book = {}
        if domain in BOOK_SLOTS and rng.random() < 0.4 + 0.2 * level:
            for slot in BOOK_SLOTS[domain]:
                choices = TIMES if slot == "time" else self.ontology.categorical[domain][slot]
                book[slot] = rng.choice([c for c in choices if c not in ("0", "dontcare")])
        answerable = [s for s in ANSWERS[domain] if s not in informable and entity_value(domain, entity, s)]
        requests = rng.sample(answerable, rng.randint(0, min(3, level + 1, len(answerable))))
        return Goal(informable=informable, requestable=requests, book=book), entity

    def _taxi(self, entities: dict[str, dict[str, str]], level: int, rng: random.Random) -> tuple[Goal, dict[str, str]]:
        names = [e["name"] for e in entities.values() if "name" in e]
        places = sorted(self.ontology.values["taxi"]["departure"])
        departure, destination = (rng.sample(names, 2) if len(names) >= 2 else
                                  [names[0], rng.choice(places)] if names else rng.sample(places, 2))
        informable = {"departure": departure, "destination": destination, rng.choice(("leave", "arrive")): rng.choice(TIMES)}
        car = f"{rng.choice(self.ontology.taxi['colors'])} {rng.choice(self.ontology.taxi['types'])}"
        phone = "07" + "".join(rng.choice("0123456789") for _ in range(9))
        requests = rng.sample(ANSWERS["taxi"], rng.randint(0, min(2, level)))
        return Goal(informable=informable, requestable=requests), {"car": car, "phone": phone}


def entity_value(domain: str, entity: dict[str, str], slot: str) -> str | None:
    """A database row's value for a reply placeholder (a restaurant's price is its price range, a train's time its
    duration)."""
    column = {"price": "pricerange", "time": "duration"} if domain in ("restaurant", "hotel", "train") else {}
    value = entity.get(slot)
    if value in (None, "?") and slot in column:
        value = entity.get(column[slot])
    return None if value in (None, "?") else value


def _earlier(clock: str, rng: random.Random) -> str:
    """A "leave after" constraint the row satisfies: its departure time, rounded down to a quarter, minus 0-45 min."""
    minutes = max(0, int(clock[:2]) * 60 + int(clock[3:]) - int(clock[3:]) % 15 - 15 * rng.randint(0, 3))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _later(clock: str, rng: random.Random) -> str:
    """An "arrive by" constraint the row satisfies: its arrival time rounded up to a quarter, plus 0-45 min."""
    minutes = int(clock[:2]) * 60 + int(clock[3:])
    minutes = min(23 * 60 + 45, minutes + (-minutes) % 15 + 15 * rng.randint(0, 3))
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
