"""MultiWOZ 2.0/2.1 reader: the official ``data.json`` layout -> `Dialogue` records.

Accepted inputs, all split by dialogue id:

* the official archive (``MultiWOZ_2.1.zip``) or its unpacked folder: ``data.json``
  (MultiWOZ 2.0: ``annotated_user_da_with_span_full.json``, which carries the spans)
  plus ``valListFile.txt`` / ``testListFile.txt``; ``trainListFile`` is optional,
  train being every other dialogue;
* a folder with one file per split (``val.json.zip`` or ``val.json``), as in the
  shared data.

Dialogue ids are lower-case without ``.json`` ("SNG0073.json" -> "sng0073"), the
form the standard evaluator's prediction files use.  Each `Turn` pairs a user
utterance with the system reply:

* ``belief_state``: the system entry's ``metadata`` (the state after the user
  spoke), semi and book slots, ordered by first mention;
* ``dialogue_act``: the system's ``dialog_act``; ``Booking-*`` acts go to the
  domain being booked (newly booked, else named in this turn, else changed,
  else the last restaurant/hotel/train) as offerbook / offerbooked / nobook;
* ``requested_slots``: the user's ``*-Request`` acts;
* ``active_domains``: domains of this turn's system and user acts, then those
  whose state changed; empty for pure greetings and thanks;
* ``booked_domains``: domains holding a booking so far (``booked`` lists).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

from todrl.data.archive import open_zip, parse_json, read_member
from todrl.data.delex import delexicalize
from todrl.data.errors import DataError
from todrl.data.normalize import (
    ACT_SLOT_NAMES,
    ACTS,
    DOMAINS,
    INFORMABLE_SLOTS,
    normalize_text,
    normalize_value,
    requestable_slot_name,
    state_slot_name,
)
from todrl.data.records import BeliefState, Dialogue, DialogueAct, Goal, Turn

SAMPLE_PATH = Path(__file__).resolve().parents[1] / "resources" / "multiwoz21_sample"
"""The small MultiWOZ 2.1 sample shipped with todrl (official layout, with its database)."""

SPLITS = ("train", "val", "test")
DATASET = "multiwoz21"

_DATA_FILES = ("annotated_user_da_with_span_full.json", "data.json")
_LIST_FILES = {"train": "trainListFile", "val": "valListFile", "test": "testListFile"}
_LIST_SUFFIXES = (".txt", ".json", "")
_BOOKABLE = ("restaurant", "hotel", "train")
_BOOKING_ACTS = {"inform": "offerbook", "book": "offerbooked", "nobook": "nobook", "request": "request"}
_ACT_NAMES = {act: act for act in ACTS} | {"book": "offerbooked"}
_ACT_DOMAINS = frozenset(DOMAINS) | {"general", "booking"}
_UNSET = ("", "not mentioned")


def dialogue_id(raw_id: str) -> str:
    """Official id or list-file entry -> the id used everywhere in todrl ("SNG0073.json" -> "sng0073")."""
    name = raw_id.strip().lower()
    return name[: -len(".json")] if name.endswith(".json") else name


def load_multiwoz(path: str | Path, split: str) -> list[Dialogue]:
    """Read one split ("train", "val" or "test") of MultiWOZ from an archive or folder (see module doc)."""
    raw, source = _read_split(Path(path), split)
    return [_parse_dialogue(source, name, record) for name, record in raw.items()]


def read_records(path: str | Path, split: str) -> dict[str, Any]:
    """One split's raw dialogue records keyed by todrl id, for tools that rewrite the corpus."""
    return _read_split(Path(path), split)[0]


# -- locating and reading files ------------------------------------------------------------------


def _read_split(path: Path, split: str) -> tuple[dict[str, Any], str]:
    """Raw dialogues of one split, keyed by normalized id, and the file they came from (for errors)."""
    if split not in SPLITS:
        raise ValueError(f"unknown MultiWOZ split {split!r}; choose one of {', '.join(SPLITS)}")
    if not path.exists():
        raise DataError(path, "no such file or folder")
    files = _files(path)
    data_file = next((name for name in _DATA_FILES if name in files), None)
    if data_file is not None:
        source, read = files[data_file]
        lists = {}
        for s in SPLITS:
            found = next((files[name] for name in _list_file_names(s) if name in files), None)
            if found is not None:
                lists[s] = (found[1]().decode("utf-8"), found[0])
        return _select_split(parse_json(source, read()), source, lists, split)
    looked_for = [f"{split}.json.zip", f"{split}.json"]
    for name in looked_for:
        if name in files:
            source, read = files[name]
            data = _read_zipped_json(read(), source) if name.endswith(".zip") else parse_json(source, read())
            return _normalize_ids(data, source), source
    raise DataError(path, f"no {split} split here: looked for {', '.join(looked_for + list(_DATA_FILES))}")


def _files(path: Path) -> dict[str, tuple[str, Callable[[], bytes]]]:
    """File name -> (where it is, how to read it), for a folder or an archive (at any depth inside)."""
    if path.is_dir():
        return {file.name: (str(file), file.read_bytes) for file in path.iterdir() if file.is_file()}
    archive = open_zip(path)
    files: dict[str, tuple[str, Callable[[], bytes]]] = {}
    for name in archive.namelist():
        member = PurePosixPath(name)
        if "__MACOSX" not in member.parts and not member.name.startswith("._") and not name.endswith("/"):
            files.setdefault(member.name, (f"{path}:{name}", partial(read_member, archive, name, f"{path}:{name}")))
    return files


def _list_file_names(split: str) -> list[str]:
    return [_LIST_FILES[split] + suffix for suffix in _LIST_SUFFIXES]


def _select_split(data: Any, source: str, lists: dict[str, tuple[str, str]], split: str) -> tuple[dict[str, Any], str]:
    """Cut one split out of all dialogues by the official id lists (train: listed, else all the rest)."""
    dialogues = _normalize_ids(data, source)
    if split not in lists and split != "train":
        looked_for = ", ".join(_list_file_names(split))
        raise DataError(source, f"no list file for the {split} split: looked for {looked_for} beside it")
    if split in lists:
        text, list_source = lists[split]
        ids = [dialogue_id(line) for line in text.splitlines() if line.strip()]
        missing = [i for i in ids if i not in dialogues]
        if missing:
            examples = ", ".join(missing[:3])
            raise DataError(list_source, f"{len(missing)} listed dialogues are not in {source}, e.g. {examples}")
        return {i: dialogues[i] for i in ids}, source
    held_out = {dialogue_id(line) for s in ("val", "test") if s in lists for line in lists[s][0].splitlines()}
    return {i: record for i, record in dialogues.items() if i not in held_out}, source


def _normalize_ids(data: Any, source: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise DataError(source, f"expected a JSON object mapping dialogue ids to dialogues, found {type(data).__name__}")
    return {dialogue_id(key): record for key, record in data.items()}


def _read_zipped_json(content: bytes, source: str) -> Any:
    """The one JSON file inside a per-split archive (``val.json.zip``)."""
    archive = open_zip(io.BytesIO(content), source)
    members = [name for name in archive.namelist() if name.endswith(".json") and "__MACOSX" not in name]
    if len(members) != 1:
        raise DataError(source, f"expected exactly one .json file inside, found {len(members)}")
    where = f"{source}:{members[0]}"
    return parse_json(where, read_member(archive, members[0], where))


# -- one dialogue ------------------------------------------------------------------------------------


@dataclass
class _DialogueState:
    """What carries over from turn to turn while reading one dialogue."""

    belief: BeliefState = field(default_factory=dict)
    booked: dict[str, int] = field(default_factory=dict)
    last_bookable: str | None = None


def _parse_dialogue(source: str, name: str, record: Any) -> Dialogue:
    def fail(message: str, turn: int | None = None) -> DataError:
        return DataError(source, message, dialogue_id=name, turn=turn)

    if not isinstance(record, dict):
        raise fail(f"expected an object with 'goal' and 'log', found {type(record).__name__}")
    log, raw_goal = record.get("log"), record.get("goal")
    if not isinstance(log, list):
        raise fail("missing 'log' list")
    if not isinstance(raw_goal, dict):
        raise fail("missing 'goal' object")
    if len(log) % 2:
        raise fail(f"log has {len(log)} entries; expected user/system pairs (an even number)")
    try:
        goal = _parse_goal(raw_goal)
    except ValueError as error:
        raise fail(str(error)) from error
    state = _DialogueState()
    turns = []
    for index in range(len(log) // 2):
        try:
            turns.append(_parse_turn(log[2 * index], log[2 * index + 1], 2 * index, state))
        except ValueError as error:
            raise fail(str(error), turn=index) from error
    return Dialogue(id=name, goal=goal, turns=turns, dataset=DATASET, services=list(goal))


def _parse_goal(raw: dict[str, Any]) -> dict[str, Goal]:
    goal = {}
    for domain in DOMAINS:
        part = raw.get(domain)
        if not part:
            continue
        if not isinstance(part, dict):
            raise ValueError(f"goal[{domain!r}] is {type(part).__name__}; expected an object")
        informable = _slot_values(part.get("info") or {}, f"goal[{domain!r}]['info']")
        book = _slot_values(
            {k: v for k, v in (part.get("book") or {}).items() if k not in ("invalid", "pre_invalid")},
            f"goal[{domain!r}]['book']",
        )
        requestable = list(dict.fromkeys(requestable_slot_name(slot) for slot in part.get("reqt") or []))
        if informable or book or requestable:
            goal[domain] = Goal(informable=informable, requestable=requestable, book=book)
    return goal


def _slot_values(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where} is {type(raw).__name__}; expected an object of slot values")
    values = {}
    for raw_slot, raw_value in raw.items():
        slot = state_slot_name(raw_slot)
        value = normalize_value(slot, str(raw_value))
        if value is not None:
            values[slot] = value
    return values


def _entry(entry: Any, position: int, speaker: str) -> dict[str, Any]:
    if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
        raise ValueError(f"{speaker} entry log[{position}] has no 'text'")
    return entry


def _parse_turn(user_entry: Any, system_entry: Any, position: int, state: _DialogueState) -> Turn:
    user = _entry(user_entry, position, "user")
    system = _entry(system_entry, position + 1, "system")
    metadata = system.get("metadata")
    if not isinstance(metadata, dict) or not metadata:
        raise ValueError(f"system entry log[{position + 1}] has no 'metadata' (belief state)")
    if "span_info" not in system:
        raise ValueError(f"system entry log[{position + 1}] has no 'span_info' (needed to delexicalize)")

    belief, booked = _read_metadata(metadata, position + 1)
    changed = [d for d in belief if belief[d] != state.belief.get(d)] + [d for d in state.belief if d not in belief]
    newly_booked = [d for d, count in booked.items() if count > state.booked.get(d, 0)]
    belief = _keep_mention_order(state.belief, belief)

    system_acts = _read_acts(system.get("dialog_act"), position + 1)
    user_acts = _read_acts(user.get("dialog_act"), position)
    mentioned = [d for d, _, _ in system_acts + user_acts if d not in ("general", "booking")]
    candidates = newly_booked + mentioned + changed
    booking_domain = next((d for d in candidates if d in _BOOKABLE), state.last_bookable or next(iter(candidates), None))
    dialogue_act = _group_acts(system_acts, booking_domain)
    requested = _group_acts([a for a in user_acts if a[1] == "request"], booking_domain)

    active = list(dict.fromkeys([d for d in dialogue_act if d != "general"] + mentioned + changed))
    state.belief, state.booked = belief, booked
    state.last_bookable = next((d for d in active if d in _BOOKABLE), state.last_bookable)
    try:
        system_delex = delexicalize(system["text"], system["span_info"])
    except ValueError as error:
        raise ValueError(f"system entry log[{position + 1}]: {error}") from error
    return Turn(
        user=normalize_text(user["text"]),
        system=normalize_text(system["text"]),
        system_delex=normalize_text(system_delex),
        belief_state=belief,
        dialogue_act=dialogue_act,
        requested_slots={d: acts["request"] for d, acts in requested.items()},
        active_domains=active,
        booked_domains=[d for d in DOMAINS if booked.get(d)],
    )


def _read_metadata(metadata: Mapping[str, Any], position: int) -> tuple[BeliefState, dict[str, int]]:
    """Belief state (known domains and slots only) and how many bookings each domain holds."""
    belief: BeliefState = {}
    booked: dict[str, int] = {}
    for domain in metadata:
        if domain not in DOMAINS:
            continue  # e.g. the never-filled "bus" domain
        part = metadata[domain]
        if not isinstance(part, dict) or not isinstance(part.get("semi"), dict) or not isinstance(part.get("book"), dict):
            raise ValueError(f"system entry log[{position}]: metadata[{domain!r}] lacks 'semi'/'book' objects")
        slots = {}
        for raw_slot, raw_value in list(part["semi"].items()) + list(part["book"].items()):
            if raw_slot == "booked":
                if not isinstance(raw_value, list):
                    raise ValueError(f"system entry log[{position}]: metadata[{domain!r}]['book']['booked'] is not a list")
                booked[domain] = len(raw_value)
                continue
            if raw_value in _UNSET:
                continue
            slot = state_slot_name(raw_slot)
            if slot in INFORMABLE_SLOTS[domain]:
                value = normalize_value(slot, str(raw_value))
                if value is not None:
                    slots[slot] = value
        if slots:
            belief[domain] = slots
    return belief, booked


def _keep_mention_order(previous: BeliefState, current: BeliefState) -> BeliefState:
    """Order domains and slots by first mention: kept ones where they were, new ones appended."""
    ordered: BeliefState = {}
    for domain in list(previous) + [d for d in current if d not in previous]:
        if domain not in current:
            continue
        old = previous.get(domain, {})
        new = current[domain]
        ordered[domain] = {slot: new[slot] for slot in list(old) + [s for s in new if s not in old] if slot in new}
    return ordered


def _read_acts(raw: Any, position: int) -> list[tuple[str, str, list[str]]]:
    """``{"Hotel-Inform": [["Area", "north"], ...]}`` -> [(domain, act, slots)] in annotation order."""
    if raw is None or raw == "No Annotation":
        return []
    if not isinstance(raw, dict):
        raise ValueError(f"log[{position}]: dialog_act is {type(raw).__name__}; expected an object")
    acts = []
    for name, rows in raw.items():
        domain, _, act = name.lower().partition("-")
        if domain not in _ACT_DOMAINS or act not in (_BOOKING_ACTS if domain == "booking" else _ACT_NAMES):
            raise ValueError(f"log[{position}]: unknown dialogue act {name!r}")
        if not isinstance(rows, list) or any(not isinstance(row, (list, tuple)) or len(row) != 2 for row in rows):
            raise ValueError(f"log[{position}]: dialog_act[{name!r}] must be a list of [slot, value] pairs")
        slots = []
        for raw_slot, _ in rows:
            if str(raw_slot).lower() == "none":
                continue
            slot = ACT_SLOT_NAMES.get(str(raw_slot).lower())
            if slot is None:
                raise ValueError(f"log[{position}]: dialog_act[{name!r}] has unknown slot {raw_slot!r}")
            slots.append(slot)
        acts.append((domain, act, slots))
    return acts


def _group_acts(acts: list[tuple[str, str, list[str]]], booking_domain: str | None) -> DialogueAct:
    """Acts by domain (``general`` last) and by the fixed act order, slots de-duplicated."""
    grouped: dict[str, dict[str, list[str]]] = {}
    for domain, act, slots in acts:
        if domain == "booking":
            if booking_domain is None:
                continue  # an offer to book before any domain came up ("can I book you something?")
            domain, act = booking_domain, _BOOKING_ACTS[act]
        else:
            act = _ACT_NAMES[act]
        merged = grouped.setdefault(domain, {}).setdefault(act, [])
        merged.extend(slot for slot in slots if slot not in merged)
    order = sorted(grouped, key=lambda d: d == "general")
    return {d: {a: grouped[d][a] for a in sorted(grouped[d], key=ACTS.index)} for d in order}
