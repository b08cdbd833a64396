"""LABES's preprocessing of KVRET: the references that published In-Car scores are computed against.

LABES (thu-spmi/LABES: ``datasets.py`` ``Kvret``, ``vocab.py``, ``reader.py``)
built the test references that LABES, GALAXY and SPACE-3 report on.  Each
step departs from todrl's reader (`todrl.data.incar`), which is why scores
against these references differ from todrl's own:

- the release is lower-cased, tokenized and every token lemmatized as a noun
  ("miles" -> "mile", "was" -> "wa"); times stay 12-hour ("5 pm" -> "5pm");
- a turn is an assistant message that follows driver words; a second assistant
  message in a row is dropped (its slots still count from then on);
- replies: a number before "f" becomes ``[value_temperature]``, "N mile(s)"
  ``[value_distance]``, and "N word word..." ``[value_address]`` (a pattern
  that also swallows "2 gas stations"); then, longest first, every listed
  entity of the domain's requestable slots that the driver has not said;
- constraints: the annotated slots accumulate over the dialogue, kept to the
  11 informable ones; a value stays when it, or its first word, is a listed
  entity (then that), and is dropped otherwise;
- for LABES's own model, words outside the 1,100 most frequent of the three
  splits (special tokens included) read ``<unk>``, in replies and constraints.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError
from todrl.data.incar import ENTITIES_FILE, INCAR_DOMAINS, SPLIT_FILES, read_incar_json
from todrl.evaluate.incar_text import clean_replace, join_meridiem, labes_words

INFORMABLE: dict[str, tuple[str, ...]] = {
    "weather": ("date", "location", "weather_attribute"),
    "navigate": ("poi_type", "distance"),
    "schedule": ("event", "date", "time", "agenda", "party", "room"),
}
"""LABES's ``KvretOntology.informable_slots_dict``, in its order (GALAXY writes constraints in this order)."""
SLOTS: tuple[str, ...] = tuple(f"{domain}-{slot}" for domain, slots in INFORMABLE.items() for slot in slots)
REQUESTABLE: dict[str, tuple[str, ...]] = {
    "weather": ("weather_attribute",),
    "navigate": ("poi", "traffic_info", "address", "distance"),
    "schedule": ("event", "date", "time", "party", "agenda", "room"),
}
VOCABULARY_SIZE = 1100
"""LABES's ``vocab_size`` for KVRET, its special tokens included."""
_SPECIAL_TOKENS = (
    ("<pad>", "<go_r>", "<unk>", "<eos_u>", "<eos_r>", "<eos_b>", "<eos_as>", "<eos_av>", "<go_as>", "<go_av>")
    + tuple(f"<eos_b{number}>" for number in range(1, len(SLOTS) + 1))
    + tuple(dict.fromkeys(f"[value_{slot}]" for slots in REQUESTABLE.values() for slot in slots))
    + tuple(dict.fromkeys(slot.split("-")[1] for slot in SLOTS))
    + ("dontcare",)
)
UNKNOWN = "<unk>"


@dataclass(frozen=True)
class LabesTurn:
    """One reply of LABES's references, with what it is scored against."""

    position: int
    """Index of todrl's turn (`todrl.data.incar`) this reply belongs to."""
    heard: str
    """Everything the driver has said so far, concatenated as LABES does when it checks what was said."""
    response: str
    constraint: dict[str, str]
    """"domain-slot" -> value, after LABES's cleaning."""


@dataclass(frozen=True)
class LabesDialogue:
    domain: str
    turns: tuple[LabesTurn, ...]
    todrl_turns: int


_TEMPERATURE = re.compile(r"\d+-?\d*fs?")
_DISTANCE = re.compile(r"\d+\s?miles?")
_ADDRESS = re.compile(r"\d+\s\w+\s(dr)?(ct)?(rd)?(road)?(st)?(ave)?(way)?(pl)?\w*[.]?")
_MILES = re.compile(r"(\d+)\s?(mile)s?")
"""LABES's patterns for numbers in replies (before tokenization) and in constraint values."""


class LabesKvret:
    """The KVRET release as LABES preprocesses it: entity list, vocabulary and turns of every split."""

    def __init__(self, entities: Mapping[str, list[Any]]) -> None:
        self.entities = labes_entities(entities)
        """Value -> slot, in LABES's order (`clean_replace` rewrites replies in this order)."""
        self._by_length = {  # what `delexicalize` looks for, longest first
            domain: sorted([(v, s) for v, s in self.entities.items() if s in REQUESTABLE[domain]], key=lambda e: -len(e[0]))
            for domain in INCAR_DOMAINS
        }
        self.splits: dict[str, dict[str, LabesDialogue]] = {}
        self.vocabulary: frozenset[str] = frozenset()

    @classmethod
    def from_release(cls, path: str | Path) -> LabesKvret:
        """Preprocess the three splits of the official release (a folder or ``kvret_dataset_public.zip``)."""
        where, entities = read_incar_json(Path(path), ENTITIES_FILE)
        if not isinstance(entities, dict) or not all(isinstance(v, list) and v for v in entities.values()):
            raise DataError(where, "expected an object mapping entity types to non-empty value lists")
        corpus = cls(_lower(entities))
        words: Counter[str] = Counter()
        for split, name in SPLIT_FILES.items():
            where, records = read_incar_json(Path(path), name)
            if not isinstance(records, list):
                raise DataError(where, f"expected a list of dialogues, found {type(records).__name__}")
            corpus.splits[split] = {}
            for index, record in enumerate(records):
                dialogue_id, dialogue, counted = corpus._read(where, index, record)
                corpus.splits[split][dialogue_id] = dialogue
                words.update(counted)
        corpus.vocabulary = _vocabulary(words)
        return corpus

    def _read(self, where: str, index: int, record: Any) -> tuple[str, LabesDialogue, list[str]]:
        """One dialogue as LABES's ``preprocess_data`` walks it, and the words it adds to the vocabulary counts."""
        try:
            scenario = record["scenario"]
            dialogue_id, domain = scenario["uuid"], scenario["task"]["intent"]
            raw_turns = list(record["dialogue"])
        except (KeyError, TypeError) as error:
            raise DataError(where, f"not a KVRET dialogue ({error!r})", dialogue_id=f"#{index}") from None
        if domain not in INCAR_DOMAINS:
            raise DataError(where, f"scenario.task.intent is {domain!r}, expected one of {INCAR_DOMAINS}", dialogue_id)
        heard, user, constraint = "", None, {}
        turns, users, todrl_turns = [], [], 0
        for position, raw in enumerate(raw_turns):
            try:  # LABES reads the turns without checks; name what breaks it
                speaker, text = raw["turn"], raw["data"]["utterance"].lower()
                slots = {f"{domain}-{slot}": value.lower() for slot, value in raw["data"].get("slots", {}).items()}
            except (KeyError, TypeError, AttributeError) as error:
                raise DataError(where, f"not a KVRET turn ({error!r})", dialogue_id, position) from None
            if speaker == "driver":
                user = join_meridiem(labes_words(text))
                heard += user
                continue
            if speaker != "assistant":
                raise DataError(where, f"turn is {speaker!r}, expected 'driver' or 'assistant'", dialogue_id, position)
            if user is not None or todrl_turns == 0:  # todrl's turn boundaries
                todrl_turns += 1
            constraint = self.clean_constraint(constraint | slots)
            if user is not None:
                response = self.delexicalize(join_meridiem(text), heard, domain)
                turns.append(LabesTurn(todrl_turns - 1, heard, response, constraint))
                users.append(user)
            user = None
        final = list(constraint.values())  # LABES counts the dialogue's last constraint once per turn
        counted = [word for turn, said in zip(turns, users) for word in [*final, *said.split(), *turn.response.split()]]
        return dialogue_id, LabesDialogue(domain, tuple(turns), todrl_turns), counted

    def delexicalize(self, response: str, heard: str, domain: str) -> str:
        """LABES's ``_replace_entity``: numbers by pattern, then listed entities the driver has not said."""
        response = _TEMPERATURE.sub("[value_temperature]", response)
        response = _DISTANCE.sub("[value_distance]", response)
        response = _ADDRESS.sub("[value_address]", response)
        response = labes_words(response).replace("[ ", "[").replace(" ]", "]")
        for value, slot in self._by_length[domain]:
            start = response.find(value)
            if start == -1:
                continue
            end = response.find(" ", start + len(value))
            found = response[start : end if end != -1 else len(response)]
            bare = _bare(value)
            if bare == _bare(found) and bare not in heard and value not in heard:
                response = clean_replace(response, found, f"[value_{slot}]")
        return response

    def clean_constraint(self, constraint: Mapping[str, str]) -> dict[str, str]:
        """LABES's ``_clean_constraint_dict``: informable slots whose value, or its first word, is a listed entity."""
        cleaned = {}
        for slot, value in constraint.items():
            if slot not in SLOTS:
                continue
            value = _MILES.sub(r"\1 \2", join_meridiem(labes_words(value)))
            words = value.split()
            if value in self.entities:
                cleaned[slot] = value
            elif words and words[0] in self.entities:
                cleaned[slot] = words[0]
        return cleaned

    def in_vocabulary(self, text: str) -> str:
        """Text as LABES's model reads it back: words outside its vocabulary become ``<unk>``."""
        return " ".join(word if word in self.vocabulary else UNKNOWN for word in text.split())


def labes_entities(entities: Mapping[str, list[Any]]) -> dict[str, str]:
    """LABES's ``get_value_to_slot_mapping``: every listed value, and the first word of events and place types."""
    found: dict[str, str] = {}

    def add(value: str, slot: str) -> None:
        value = labes_words(value)
        found[value] = slot
        if slot in ("event", "poi_type") and value:
            found[value.split()[0]] = slot

    for slot, values in entities.items():
        if isinstance(values[0], str):
            for value in values:
                add(value, slot)
        elif isinstance(values[0], dict):  # places: {"address", "poi", "type"} in the file's key order
            for place in values:
                for key, value in place.items():
                    add(value, "poi_type" if key == "type" else key)
    return found


@cache
def load_labes_kvret(path: Path) -> LabesKvret:
    """`LabesKvret.from_release`, once per release (it tokenizes the whole corpus: seconds)."""
    return LabesKvret.from_release(path)


def _vocabulary(words: Counter[str]) -> frozenset[str]:
    """LABES's ``Vocab.construct``: special tokens, then the most frequent words (ties in first-seen order)."""
    chosen = dict.fromkeys(_SPECIAL_TOKENS)
    for word, _ in words.most_common():
        if len(chosen) >= VOCABULARY_SIZE:
            break
        chosen.setdefault(word)
    return frozenset(chosen)


def _bare(text: str) -> str:
    return text.replace(".", "").replace(" ", "").replace("'", "")


def _lower(value: Any) -> Any:
    """LABES reads every file lower-cased."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, list):
        return [_lower(item) for item in value]
    if isinstance(value, dict):
        return {key.lower(): _lower(item) for key, item in value.items()}
    return value
