"""In-Car Assistant (KVRET) reader: the official release -> Dialogue records.

The preprocessing follows what LABES and GALAXY do with this corpus, so that
Match and SuccF1 mean what they mean in those papers:

- A dialogue has one domain, its scenario's intent (schedule, weather, navigate).
- The belief state accumulates the ``slots`` annotated on the assistant turns,
  kept to LABES's 11 informable slots (``INCAR_INFORMABLE``). ``poi``,
  ``address`` and ``traffic_info`` are what a driver asks for, not constraints.
- A response is delexicalized only for the slots the assistant provides: the
  domain's requestable slots (``INCAR_REQUESTABLE``) plus temperatures in
  weather, and only for values the driver has not said yet in the dialogue.
  What the driver said stays a word the model copies from its belief state;
  the placeholders are what the assistant adds, which is what SuccF1 counts.
- The requested slots of a turn are the assistant's ``requested`` flags, kept
  to the domain's requestable slots. The flags are noisy (annotators also flag
  constraints the driver states, "the nearest parking garage"), but dropping
  the slots a turn also fills helps schedule and hurts navigate and weather:
  overall it agrees no better with the placeholders of the replies.

Turn structure: a driver utterance is paired with the assistant reply after it.
Consecutive driver utterances are joined into one user turn, consecutive
assistant utterances into one reply (their annotations merged); a final driver
utterance with no reply is dropped, since there is nothing to learn from it.
Three training dialogues are left with no turns (one is empty, two hold a lone
driver utterance); they are kept so that split sizes match the corpus
(2,425 / 302 / 304).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

from rewards.spans import INCAR_SLOTS

from todrl.data import dev_split_name
from todrl.data.archive import open_zip, read_file_json, read_member_json
from todrl.data.errors import DataError
from todrl.data.normalize import normalize_text
from todrl.data.records import Dialogue, Goal, Turn

INCAR_DOMAINS: tuple[str, ...] = ("schedule", "weather", "navigate")

INCAR_INFORMABLE: dict[str, tuple[str, ...]] = INCAR_SLOTS
"""The 11 slots whose final values Match compares (LABES / GALAXY ontology); the span grammar's In-Car slots."""

INCAR_REQUESTABLE: dict[str, tuple[str, ...]] = {
    "schedule": ("event", "time", "date", "party", "room", "agenda"),
    "weather": ("weather_attribute",),
    "navigate": ("poi", "address", "distance", "traffic_info"),
}
"""Slots a driver may ask for, per domain (LABES / GALAXY ontology)."""

INCAR_VALUE_SLOTS: tuple[str, ...] = (
    "event",
    "time",
    "date",
    "party",
    "room",
    "agenda",
    "weather_attribute",
    "temperature",
    "poi",
    "address",
    "distance",
    "traffic_info",
)
"""Every ``[value_<slot>]`` placeholder a delexicalized In-Car response may hold."""

SPLIT_FILES: dict[str, str] = {
    "train": "kvret_train_public.json",
    "dev": "kvret_dev_public.json",
    "test": "kvret_test_public.json",
}
ENTITIES_FILE = "kvret_entities.json"
ARCHIVE = "kvret_dataset_public.zip"

_DELEX_SLOTS: dict[str, tuple[str, ...]] = {
    domain: slots + (("temperature",) if domain == "weather" else ())
    for domain, slots in INCAR_REQUESTABLE.items()
}
# Values written with numbers, more of them than the entity file lists (after
# normalize_text, clock times read hh:mm).
_PATTERNS: dict[str, str] = {
    "temperature": r"\d+(?:-\d+)? ?(?:f|fs)|\d+(?:-\d+)?(?:s| degrees?(?: fahrenheit)?)",
    "distance": r"\d+ miles?",
    "time": r"\d\d:\d\d",
    "date": r"(?:the )?\d{1,2}(?:st|nd|rd|th)",
}
_NO_VALUE = {"", "-"}
"""How the KB writes an empty cell (a calendar event without a room)."""
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}


def load_incar(path: str | PathLike[str], split: str) -> list[Dialogue]:
    """Read one split ("train", "dev"/"val", "test") of KVRET.

    ``path`` is the official ``kvret_dataset_public.zip``, a folder holding it,
    or a folder holding the unpacked JSON files.
    """
    where, records = _read_split(Path(path), split)
    lexicon = load_incar_entities(path)
    return [_read_dialogue(where, index, record, lexicon) for index, record in enumerate(records)]


def load_incar_kbs(path: str | PathLike[str], split: str) -> dict[str, list[dict[str, str]]]:
    """Dialogue id -> the rows of its scenario's knowledge base, cells normalized like the utterances.

    A reply's placeholders are filled from these rows (`todrl.lexicalize`); a
    scenario without rows (a new calendar entry) maps to [].
    """
    where, records = _read_split(Path(path), split)
    kbs: dict[str, list[dict[str, str]]] = {}
    for index, record in enumerate(records):
        scenario = _scenario(where, index, record)
        kbs[scenario["uuid"]] = [
            {column: normalize_text(cell) for column, cell in row.items() if isinstance(cell, str) and cell.strip() not in _NO_VALUE}
            for row in _kb_rows(where, scenario)
        ]
    return kbs


def _scenario(where: str, index: int, record: Any) -> dict[str, Any]:
    scenario = record.get("scenario") if isinstance(record, dict) else None
    if not isinstance(scenario, dict) or not isinstance(scenario.get("uuid"), str):
        raise DataError(where, "no scenario.uuid to name the dialogue", dialogue_id=f"#{index}")
    return scenario


def _kb_rows(where: str, scenario: dict[str, Any]) -> list[dict[str, Any]]:
    rows = (scenario.get("kb") or {}).get("items") or []
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise DataError(where, "scenario.kb.items should be a list of rows", scenario["uuid"])
    return rows


def _read_split(path: Path, split: str) -> tuple[str, list[Any]]:
    split = dev_split_name(split)
    if split not in SPLIT_FILES:
        raise ValueError(f"unknown In-Car split {split!r}: expected one of train, dev (val), test")
    where, records = read_incar_json(path, SPLIT_FILES[split])
    if not isinstance(records, list):
        raise DataError(where, f"expected a list of dialogues, found {type(records).__name__}")
    return where, records


def read_incar_json(source: Path, name: str) -> tuple[str, Any]:
    """Parse file ``name`` of the release, wherever it lies; returns (where, content)."""
    if source.is_dir():
        if (source / name).is_file():
            return read_file_json(source / name)
        if not (source / ARCHIVE).is_file():
            raise DataError(source, f"neither {name} nor {ARCHIVE} is in this folder")
        source = source / ARCHIVE
    if not source.is_file():
        raise DataError(source, "no such file or folder")
    with open_zip(source) as archive:
        members = [member for member in archive.namelist() if Path(member).name == name]
        if not members:
            raise DataError(source, f"the archive has no {name}")
        return read_member_json(source, archive, members[0])


def load_incar_entities(path: str | PathLike[str]) -> dict[str, set[str]]:
    """Entity type -> normalized values listed in ``kvret_entities.json`` (``path`` as for ``load_incar``).

    Numbers (distances, temperatures) are not listed: the text writes them with
    units. Evaluators that keep to known values, as LABES's Match does, use this.
    """
    where, entities = read_incar_json(Path(path), ENTITIES_FILE)
    if not isinstance(entities, dict):
        raise DataError(where, "expected an object mapping entity types to value lists")
    lexicon: dict[str, set[str]] = {slot: set() for slot in INCAR_VALUE_SLOTS}
    for kind, values in entities.items():
        if not isinstance(values, list):
            raise DataError(where, f"entity type {kind!r} should list its values")
        for value in values:
            if kind == "poi":
                if not isinstance(value, dict) or not all(
                    isinstance(value.get(key), str) for key in ("poi", "address", "type")
                ):
                    raise DataError(where, f"a poi entry should have 'poi', 'address' and 'type', found {value!r}")
                lexicon["poi"].add(normalize_text(value["poi"]))
                lexicon["address"].add(normalize_text(value["address"]))
                lexicon.setdefault("poi_type", set()).add(normalize_text(value["type"]))
            elif isinstance(value, str):
                lexicon.setdefault(kind, set()).add(normalize_text(value))
    return lexicon


@dataclass
class _Exchange:
    """A driver's words and the assistant's reply to them, after merging repeats."""

    driver: list[str]
    assistant: list[str]
    slots: dict[str, str] = field(default_factory=dict)
    requested: set[str] = field(default_factory=set)


def _read_dialogue(where: str, index: int, record: Any, lexicon: dict[str, set[str]]) -> Dialogue:
    scenario = _scenario(where, index, record)
    dialogue_id = scenario["uuid"]
    domain = (scenario.get("task") or {}).get("intent")
    if domain not in INCAR_DOMAINS:
        raise DataError(where, f"scenario.task.intent is {domain!r}, expected one of {INCAR_DOMAINS}", dialogue_id)
    raw_turns = record.get("dialogue")
    if not isinstance(raw_turns, list):
        raise DataError(where, "'dialogue' should be a list of turns", dialogue_id)

    delexicalize = _Delexicalizer(domain, _dialogue_values(where, scenario, lexicon))
    state: dict[str, str] = {}
    requests: list[str] = []
    driver_words: list[str] = []
    turns: list[Turn] = []
    for exchange in _exchanges(where, dialogue_id, raw_turns):
        user = normalize_text(" ".join(exchange.driver))
        system = normalize_text(" ".join(exchange.assistant))
        driver_words.append(user)
        filled = {slot: normalize_text(value) for slot, value in exchange.slots.items()}
        state.update(
            (slot, value) for slot, value in filled.items() if slot in INCAR_INFORMABLE[domain] and value
        )
        requested = [slot for slot in INCAR_REQUESTABLE[domain] if slot in exchange.requested]
        requests += [slot for slot in requested if slot not in requests]
        turns.append(
            Turn(
                user=user,
                system=system,
                system_delex=delexicalize(system, " ".join(driver_words)),
                belief_state={domain: dict(state)} if state else {},
                dialogue_act={},
                requested_slots={domain: requested} if requested else {},
                active_domains=[domain],
            )
        )
    goal = {domain: Goal(informable=dict(state), requestable=requests)}
    return Dialogue(id=dialogue_id, goal=goal, turns=turns, dataset="incar", services=[domain])


def _exchanges(where: str, dialogue_id: str, raw_turns: list[Any]) -> list[_Exchange]:
    exchanges: list[_Exchange] = []
    waiting: list[str] = []  # driver words not answered yet
    for position, raw in enumerate(raw_turns):
        speaker, data = _check_turn(where, dialogue_id, position, raw)
        if speaker == "driver":
            waiting.append(data["utterance"])
        elif waiting or not exchanges:
            exchanges.append(
                _Exchange(waiting, [data["utterance"]], dict(data["slots"]), _flags(data["requested"]))
            )
            waiting = []
        else:  # the assistant spoke twice in a row: one reply in two messages
            exchanges[-1].assistant.append(data["utterance"])
            exchanges[-1].slots.update(data["slots"])
            exchanges[-1].requested |= _flags(data["requested"])
    return exchanges


def _flags(requested: dict[str, bool]) -> set[str]:
    return {slot for slot, flag in requested.items() if flag}


def _check_turn(where: str, dialogue_id: str, position: int, raw: Any) -> tuple[str, dict[str, Any]]:
    def fail(message: str) -> DataError:
        return DataError(where, message, dialogue_id, position)

    if not isinstance(raw, dict) or raw.get("turn") not in ("driver", "assistant"):
        raise fail("a turn should be an object whose 'turn' is 'driver' or 'assistant'")
    data = raw.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("utterance"), str):
        raise fail("the turn has no data.utterance text")
    if raw["turn"] == "driver":
        return "driver", data
    data = {"slots": {}, "requested": {}, **data}
    slots, requested = data["slots"], data["requested"]
    if not isinstance(slots, dict) or not all(isinstance(value, str) for value in slots.values()):
        raise fail(f"data.slots should map slot names to text values, found {slots!r}")
    if not isinstance(requested, dict) or not all(isinstance(flag, bool) for flag in requested.values()):
        raise fail(f"data.requested should map slot names to true/false, found {requested!r}")
    return "assistant", data


def _dialogue_values(where: str, scenario: dict[str, Any], lexicon: dict[str, set[str]]) -> dict[str, set[str]]:
    """slot -> values this dialogue may mention: the entity list plus its own KB rows."""
    values = {slot: set(known) for slot, known in lexicon.items()}
    for row in _kb_rows(where, scenario):
        for column, cell in row.items():
            if not isinstance(cell, str) or cell.strip() in _NO_VALUE:
                continue
            if column in values:
                values[column].add(normalize_text(cell))
            elif column in _WEEKDAYS:  # weather rows: "monday": "stormy, low of 50F, high of 70F"
                values["weather_attribute"].add(normalize_text(cell.split(",")[0]))
    values["address"] = {spelling for address in values["address"] for spelling in _street_spellings(address)}
    return values


_STREET_TYPES = {"ave": "avenue", "st": "street", "dr": "drive", "rd": "road", "pl": "place", "ct": "court"}
_STREET_TYPES |= {long: short for short, long in _STREET_TYPES.items()}


def _street_spellings(address: str) -> set[str]:
    """The entity list writes "657 ames ave", assistants also write "657 ames avenue".

    >>> sorted(_street_spellings("657 ames ave"))
    ['657 ames ave', '657 ames avenue']
    """
    *street, kind = address.split() or [""]
    return {address, " ".join([*street, _STREET_TYPES.get(kind, kind)])}


class _Delexicalizer:
    """Replaces the values one dialogue's assistant provides with ``[value_<slot>]``."""

    def __init__(self, domain: str, values: dict[str, set[str]]) -> None:
        self.slot_of: dict[str, str] = {}
        for slot in _DELEX_SLOTS[domain]:
            for value in values.get(slot, ()):
                self.slot_of.setdefault(value, slot)
        alternatives = [f"(?P<{slot}>{_PATTERNS[slot]})" for slot in _DELEX_SLOTS[domain] if slot in _PATTERNS]
        listed = sorted((value for value in self.slot_of if value), key=len, reverse=True)
        if listed:
            alternatives.append("(?P<listed>" + "|".join(map(re.escape, listed)) + ")")
        self.pattern = re.compile(r"(?<![\w'])(?:" + "|".join(alternatives) + r")(?![\w'])")

    def __call__(self, text: str, driver_words: str) -> str:
        said = f" {driver_words} "

        def replace(match: re.Match[str]) -> str:
            if f" {match.group(0)} " in said:
                return match.group(0)
            slot = match.lastgroup
            return f"[value_{self.slot_of[match.group(0)] if slot == 'listed' else slot}]"

        return self.pattern.sub(replace, text)
