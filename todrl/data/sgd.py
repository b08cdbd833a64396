"""Schema-Guided Dialogue (SGD) reader: the official release -> Dialogue records.

- Turns: each USER utterance with the SYSTEM utterance after it. The release
  alternates strictly, so anything else is reported as a corrupt file.
- Belief state: the union over the user turn's frames of ``state.slot_values``,
  ``{service: {slot: value}}``. SGD lists every way a value was said ("11:30
  am", "half past 11 in the morning"): the belief state keeps the first, and
  ``SgdTurn.gold_values`` keeps them all for a DST evaluator that accepts any.
  A service without a frame in the turn is not in it, as in SGD's own
  per-frame evaluation.
- Dialogue act: the SYSTEM frames' actions, ``{service: {act: [slots]}}``.
- Delexicalized response: the SYSTEM frames' slot spans become
  ``[value_<slot>]``. Categorical slots carry no spans in SGD: a value the
  system's actions name is replaced where the text says it verbatim (seats,
  price range, star rating, counts); yes/no answers stay words.
- Requested slots: the user frames' ``state.requested_slots``.
- Names: services and acts are lower-cased (``restaurants_2``, ``inform``),
  SGD's slot names are kept; text and values go through ``normalize_text``.

Files from the dataset's first release (no user actions, no service calls) read
the same: only states, system actions and spans are used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from os import PathLike
from pathlib import Path
from typing import Any

from todrl.data import dev_split_name
from todrl.data.archive import open_zip, read_file_json, read_member_json
from todrl.data.errors import DataError
from todrl.data.normalize import normalize_text
from todrl.data.records import Dialogue, Goal, Turn

SPLITS = ("train", "dev", "test")
_DIALOGUE_FILE = re.compile(r"(?:^|/)dialogues_\d+\.json$")

normalize_sgd_value = lru_cache(maxsize=1 << 16)(normalize_text)
"""How the records spell a value (states repeat every value on every later turn: normalize each once)."""

GoldValues = dict[str, dict[str, list[str]]]
"""service -> slot -> every accepted value, normalized, the belief state's first."""


@dataclass
class SgdTurn(Turn):
    """A Turn that also keeps all of SGD's equivalent values per slot."""

    gold_values: GoldValues = field(default_factory=dict)


@dataclass
class SgdSlot:
    name: str
    description: str
    is_categorical: bool
    possible_values: list[str]
    is_informable: bool
    """Some intent takes it as a required or optional argument (a constraint), not only as a result."""


@dataclass
class SgdIntent:
    name: str
    description: str
    is_transactional: bool
    required_slots: list[str]
    optional_slots: dict[str, str]
    """slot -> the default value used when the user says nothing."""
    result_slots: list[str]


@dataclass
class SgdService:
    name: str
    """Lower-cased, as in the dialogue records (``restaurants_2``)."""
    description: str
    slots: dict[str, SgdSlot]
    intents: dict[str, SgdIntent]

    @property
    def informable(self) -> tuple[str, ...]:
        """The slots a belief state of this service may hold, in schema order."""
        return tuple(name for name, slot in self.slots.items() if slot.is_informable)


@dataclass(frozen=True)
class ServiceCount:
    dialogues: int
    """Dialogues that use the service."""
    alone: int
    """Dialogues that use no other service: what ``services=[name]`` keeps."""


def load_sgd(path: str | PathLike[str], split: str, services: Iterable[str] | None = None) -> list[Dialogue]:
    """Read one split ("train", "dev"/"val", "test"); ``services`` keeps dialogues whose services all are listed.

    ``path`` is the SGD folder (holding ``dev.zip`` or ``dev/dialogues_*.json``),
    a split's zip, or a folder of ``dialogues_*.json`` files.
    """
    return list(iter_sgd(path, split, services))


def iter_sgd(path: str | PathLike[str], split: str, services: Iterable[str] | None = None) -> Iterator[Dialogue]:
    """``load_sgd`` one file at a time, so memory holds a single file's JSON."""
    wanted = None if services is None else {name.lower() for name in services}
    for where, records in _dialogue_files(sgd_split_source(path, split)):
        for index, record in enumerate(records):
            names = _service_names(where, index, record)
            if wanted is None or set(names) <= wanted:
                yield _read_dialogue(where, record, names)


def iter_sgd_files(path: str | PathLike[str], split: str) -> Iterator[tuple[str, list[Any]]]:
    """(where, dialogues as released) per ``dialogues_NNN.json``: SGD's own evaluator scores these, not our records."""
    return _dialogue_files(sgd_split_source(path, split))


def count_sgd_services(path: str | PathLike[str], split: str) -> dict[str, ServiceCount]:
    """Services of a split with their dialogue counts, most used first: what to pass as ``services``."""
    used: dict[str, int] = {}
    alone: dict[str, int] = {}
    for where, records in _dialogue_files(sgd_split_source(path, split)):
        for index, record in enumerate(records):
            names = _service_names(where, index, record)
            for name in set(names):
                used[name] = used.get(name, 0) + 1
            if len(set(names)) == 1:
                alone[names[0]] = alone.get(names[0], 0) + 1
    ranked = sorted(used, key=lambda name: (-used[name], name))
    return {name: ServiceCount(used[name], alone.get(name, 0)) for name in ranked}


def load_sgd_schema(path: str | PathLike[str], split: str) -> dict[str, SgdService]:
    """The split's ``schema.json``: lower-cased service name -> its slots and intents."""
    source = sgd_split_source(path, split)
    where, services = _read_schema(source)
    if not isinstance(services, list):
        raise DataError(where, "expected a list of services")
    return dict(_read_service(where, entry) for entry in services)


def sgd_split_source(path: str | PathLike[str], split: str) -> Path:
    """The zip, folder or file a split is read from (a flat folder of dialogue files serves any split)."""
    split = dev_split_name(split)
    if split not in SPLITS:
        raise ValueError(f"unknown SGD split {split!r}: expected one of train, dev (val), test")
    root = Path(path)
    if root.is_file():
        return root
    if root.is_dir():
        for candidate in (root / f"{split}.zip", root / split):
            if candidate.exists():
                return candidate
        if any(root.glob("dialogues_*.json")):
            return root
        raise DataError(root, f"no SGD {split} split here: expected {split}.zip, {split}/ or dialogues_*.json")
    raise DataError(root, "no such file or folder")


def _dialogue_files(source: Path) -> Iterator[tuple[str, list[Any]]]:
    """(where, list of dialogues) per ``dialogues_NNN.json``, in file order."""
    if source.is_dir():
        files = sorted(source.glob("dialogues_*.json"))
        if not files:
            raise DataError(source, "no dialogues_*.json files in this folder")
        for file in files:
            yield _dialogue_list(*read_file_json(file))
        return
    with open_zip(source) as archive:
        members = sorted(name for name in archive.namelist() if _DIALOGUE_FILE.search(name))
        if not members:
            raise DataError(source, "the archive has no dialogues_*.json files")
        for member in members:
            yield _dialogue_list(*read_member_json(source, archive, member))


def _read_schema(source: Path) -> tuple[str, Any]:
    if source.is_dir():
        if not (source / "schema.json").is_file():
            raise DataError(source, "no schema.json in this folder")
        return read_file_json(source / "schema.json")
    with open_zip(source) as archive:
        members = [name for name in archive.namelist() if Path(name).name == "schema.json"]
        if not members:
            raise DataError(source, "the archive has no schema.json")
        return read_member_json(source, archive, members[0])


def _dialogue_list(where: str, records: Any) -> tuple[str, list[Any]]:
    if not isinstance(records, list):
        raise DataError(where, f"expected a list of dialogues, found {type(records).__name__}")
    return where, records


def _service_names(where: str, index: int, record: Any) -> list[str]:
    if not isinstance(record, dict) or not isinstance(record.get("dialogue_id"), str):
        raise DataError(where, "a dialogue has no dialogue_id", dialogue_id=f"#{index}")
    names = record.get("services")
    if not isinstance(names, list) or not names or not all(isinstance(name, str) for name in names):
        raise DataError(where, "'services' should be a non-empty list of names", record["dialogue_id"])
    return [name.lower() for name in names]


def _read_dialogue(where: str, record: dict[str, Any], services: list[str]) -> Dialogue:
    dialogue_id = record["dialogue_id"]
    raw_turns = record.get("turns")
    if not isinstance(raw_turns, list) or not raw_turns:
        raise DataError(where, "'turns' should be a non-empty list", dialogue_id)
    if len(raw_turns) % 2:
        raise DataError(where, f"{len(raw_turns)} turns: a USER turn has no SYSTEM reply", dialogue_id)
    reader = _TurnReader(where, dialogue_id, services)
    turns = [reader.read(index, raw_turns[index], raw_turns[index + 1]) for index in range(0, len(raw_turns), 2)]
    goal = {
        service: Goal(informable=dict(reader.last_state.get(service, {})), requestable=requests)
        for service, requests in reader.requests.items()
    }
    return Dialogue(id=dialogue_id, goal=goal, turns=turns, dataset="sgd", services=services)


class _TurnReader:
    """Converts one dialogue's turn pairs, remembering what the goal and slot order need."""

    def __init__(self, where: str, dialogue_id: str, services: list[str]) -> None:
        self.where = where
        self.dialogue_id = dialogue_id
        self.slot_order: dict[str, dict[str, int]] = {}  # service -> slot -> first mention
        self.last_state: dict[str, dict[str, str]] = {}
        self.requests: dict[str, list[str]] = {service: [] for service in services}  # the goal's services

    def fail(self, position: int, message: str) -> DataError:
        return DataError(self.where, message, self.dialogue_id, position)

    def read(self, position: int, user: Any, system: Any) -> SgdTurn:
        user_frames = self._frames(position, user, "USER")
        system_frames = self._frames(position + 1, system, "SYSTEM")
        belief: dict[str, dict[str, str]] = {}
        gold: GoldValues = {}
        requested: dict[str, list[str]] = {}
        for service, frame in user_frames:
            values = self._state_values(position, frame)
            order = self.slot_order.setdefault(service, {})
            for slot in values:
                order.setdefault(slot, len(order))
            if values:
                gold[service] = {slot: values[slot] for slot in sorted(values, key=order.__getitem__)}
                belief[service] = {slot: alternatives[0] for slot, alternatives in gold[service].items()}
                self.last_state[service] = belief[service]
            asked = self._requested(position, frame)
            if asked:
                requested[service] = asked
            known = self.requests.setdefault(service, [])
            known += [slot for slot in asked if slot not in known]
        acts: dict[str, dict[str, list[str]]] = {}
        for service, frame in system_frames:
            self.requests.setdefault(service, [])
            for act, slot in self._actions(position + 1, frame):
                slots = acts.setdefault(service, {}).setdefault(act, [])
                if slot and slot not in slots:
                    slots.append(slot)
        return SgdTurn(
            user=normalize_text(user["utterance"]),
            system=normalize_text(system["utterance"]),
            system_delex=normalize_text(self._delexicalize(position + 1, system["utterance"], system_frames)),
            belief_state=belief,
            dialogue_act=acts,
            requested_slots=requested,
            active_domains=list(dict.fromkeys(service for service, _ in user_frames + system_frames)),
            booked_domains=[service for service, service_acts in acts.items() if "notify_success" in service_acts],
            gold_values=gold,
        )

    def _frames(self, position: int, turn: Any, speaker: str) -> list[tuple[str, dict[str, Any]]]:
        if not isinstance(turn, dict) or turn.get("speaker") != speaker:
            found = turn.get("speaker") if isinstance(turn, dict) else type(turn).__name__
            raise self.fail(position, f"expected a {speaker} turn here, found {found!r}")
        if not isinstance(turn.get("utterance"), str):
            raise self.fail(position, "the turn has no utterance text")
        frames = turn.get("frames")
        if not isinstance(frames, list) or not all(
            isinstance(frame, dict) and isinstance(frame.get("service"), str) for frame in frames
        ):
            raise self.fail(position, "'frames' should be a list of objects, each naming its service")
        return [(frame["service"].lower(), frame) for frame in frames]

    def _state_values(self, position: int, frame: dict[str, Any]) -> dict[str, list[str]]:
        state = frame.get("state")
        slot_values = state.get("slot_values") if isinstance(state, dict) else None
        if not isinstance(slot_values, dict):
            raise self.fail(position, f"the {frame['service']} frame has no state.slot_values")
        values: dict[str, list[str]] = {}
        for slot, alternatives in slot_values.items():
            if not isinstance(alternatives, list) or not all(isinstance(value, str) for value in alternatives):
                raise self.fail(position, f"the values of {slot!r} should be a list of strings: {alternatives!r}")
            normalized = list(dict.fromkeys(filter(None, map(normalize_sgd_value, alternatives))))
            if normalized:
                values[slot] = normalized
        return values

    def _requested(self, position: int, frame: dict[str, Any]) -> list[str]:
        asked = frame["state"].get("requested_slots", [])
        if not isinstance(asked, list) or not all(isinstance(slot, str) for slot in asked):
            raise self.fail(position, f"state.requested_slots should be a list of slot names, found {asked!r}")
        return list(dict.fromkeys(asked))

    def _actions(self, position: int, frame: dict[str, Any]) -> list[tuple[str, str]]:
        actions = frame.get("actions")
        if not isinstance(actions, list) or not all(
            isinstance(action, dict)
            and isinstance(action.get("act"), str)
            and isinstance(action.get("slot", ""), str)
            and isinstance(action.get("values", []), list)
            for action in actions
        ):
            raise self.fail(position, f"the {frame['service']} frame's actions need an 'act', a 'slot', 'values'")
        return [(action["act"].lower(), action.get("slot", "")) for action in actions]

    def _delexicalize(self, position: int, text: str, frames: list[tuple[str, dict[str, Any]]]) -> str:
        """Annotated spans become placeholders, then the span-less (categorical) values the actions name.

        Of overlapping annotated spans the one starting first (then the longest) wins.
        """
        spans = sorted(
            self._span(position, service, span, len(text))
            for service, frame in frames
            for span in frame.get("slots", [])
        )
        kept: list[tuple[int, int, str]] = []
        for start, negative_end, slot in spans:
            if not kept or start >= kept[-1][1]:
                kept.append((start, -negative_end, slot))
        kept += _categorical_spans(text, frames, kept)
        pieces = []
        done = 0  # characters of text already copied or replaced
        for start, end, slot in sorted(kept):
            pieces += [text[done:start], f" [value_{slot}] "]
            done = end
        pieces.append(text[done:])
        return "".join(pieces)

    def _span(self, position: int, service: str, span: Any, length: int) -> tuple[int, int, str]:
        """(start, -end, slot): sorting puts the longest of spans that start together first."""
        fields = [span.get(key) for key in ("start", "exclusive_end", "slot")] if isinstance(span, dict) else [None] * 3
        start, end, slot = fields
        if not (isinstance(start, int) and isinstance(end, int) and isinstance(slot, str)):
            raise self.fail(position, f"a {service} slot span should have slot, start and exclusive_end: {span!r}")
        if not 0 <= start < end <= length:
            raise self.fail(position, f"span {start}..{end} of {slot!r} lies outside the {length}-character utterance")
        return start, -end, slot


_UNSPOKEN_VALUES = {"true", "false", "dontcare"}
"""Categorical values the text never says as such ("they have vegetarian options")."""


def _categorical_spans(
    text: str, frames: list[tuple[str, dict[str, Any]]], annotated: list[tuple[int, int, str]]
) -> list[tuple[int, int, str]]:
    """Where the system says a value of a slot SGD gives no span (seats, price range, star rating, counts).

    The first word-bounded occurrence outside the annotated spans is taken.
    """
    lowered = text.lower()
    taken = list(annotated)
    found = []
    for _, frame in frames:
        spanned = {span["slot"] for span in frame.get("slots", [])}
        for action in frame["actions"]:
            slot = action.get("slot", "")
            if not slot or slot in spanned:
                continue
            for value in action.get("values", []):
                if not isinstance(value, str) or value.lower() in _UNSPOKEN_VALUES:
                    continue
                pattern = re.compile(r"(?<![\w'])" + re.escape(value.lower()) + r"(?![\w'])")
                for match in pattern.finditer(lowered):
                    if all(match.end() <= start or match.start() >= end for start, end, _ in taken):
                        found.append((match.start(), match.end(), slot))
                        taken.append(found[-1])
                        break
    return found


def _read_service(where: str, entry: Any) -> tuple[str, SgdService]:
    try:
        name = entry["service_name"].lower()
        intents = {
            intent["name"]: SgdIntent(
                name=intent["name"],
                description=intent.get("description", ""),
                is_transactional=bool(intent["is_transactional"]),
                required_slots=list(intent["required_slots"]),
                optional_slots=dict(intent["optional_slots"]),
                result_slots=list(intent["result_slots"]),
            )
            for intent in entry["intents"]
        }
        arguments = {slot for intent in intents.values() for slot in [*intent.required_slots, *intent.optional_slots]}
        slots = {
            slot["name"]: SgdSlot(
                name=slot["name"],
                description=slot.get("description", ""),
                is_categorical=bool(slot["is_categorical"]),
                possible_values=list(slot["possible_values"]),
                is_informable=slot["name"] in arguments,
            )
            for slot in entry["slots"]
        }
    except (KeyError, TypeError, AttributeError) as error:
        service = entry.get("service_name") if isinstance(entry, dict) else None
        raise DataError(where, f"service {service!r} is malformed: missing or wrong field {error}") from None
    return name, SgdService(name=name, description=entry.get("description", ""), slots=slots, intents=intents)
