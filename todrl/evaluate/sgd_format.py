"""SGD's own file format for predicted states: the released split in, ``dialogues_NNN.json`` predictions out and back.

``schema_guided_dst/evaluate.py`` reads a folder of dialogue files shaped like
the release: the same dialogues, turns and utterances, each USER frame holding a
``state`` of ``active_intent``, ``requested_slots`` and ``slot_values`` (slot ->
[value]).  As the baseline's ``pred_utils.get_predicted_dialog`` does, a
predicted USER frame drops the reference's spans and state; SYSTEM turns are
copied unchanged.  todrl predicts neither intents nor requested slots: they are
written as "NONE" and [], so the official intent accuracy and requested-slot F1
of these files mean nothing.

todrl's records spell values its own way (lower-cased, tokenized, clock times
rewritten), which the official scorer counts wrong: categorical values are
compared case-sensitively, and "17:00" is far from "5 pm".  Each predicted value
is therefore given back a spelling the schema or the dialogue has for it
(`Spellings`); a value nobody spelled is kept as predicted, so a wrong value
stays wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from todrl.data.archive import read_file_json
from todrl.data.errors import DataError
from todrl.data.records import BeliefState
from todrl.data.sgd import (
    SgdService, iter_sgd_files, load_sgd_schema, normalize_sgd_value, sgd_split_source,
)  # fmt: skip
from todrl.evaluate.predictions import PredictionError, Predictions, check_coverage

OfficialDialogues = dict[str, dict[str, Any]]
"""Dialogue id -> the dialogue as SGD's JSON writes it."""

METRICS_FILE = "dialogues_and_metrics.json"
"""What the official evaluator writes into the predictions folder, and skips when reading it."""


@dataclass
class SgdReferences:
    """One split as released: its files (for the layout of written predictions), schema, and seen services."""

    files: list[tuple[str, list[dict[str, Any]]]]
    """(file name, dialogues) in release order."""
    schema: dict[str, SgdService]
    """Lower-cased service name -> its schema (the split's own ``schema.json``)."""
    seen: frozenset[str]
    """Lower-cased services that the train schema also has (the official "seen" services)."""

    @classmethod
    def load(cls, path: str | Path, split: str) -> SgdReferences:
        """The split, with the train split's schema beside it to tell seen services from unseen ones."""
        source = sgd_split_source(path, split)
        if sgd_split_source(path, "train") == source and split != "train":
            raise DataError(source, "seen and unseen services need the train split's schema.json beside this split")
        files = [(Path(where).name, records) for where, records in iter_sgd_files(path, split)]
        schema = load_sgd_schema(path, split)
        return cls(files, schema, frozenset(schema) & frozenset(load_sgd_schema(path, "train")))

    def dialogues(self) -> OfficialDialogues:
        return {record["dialogue_id"]: record for _, records in self.files for record in records}


class Spellings:
    """The spellings a dialogue has given its values so far, found by todrl's normalization of them.

    - categorical slot: the schema's possible value (or "dontcare") that normalizes the same;
    - other slots: the value as predicted when someone said it so, else the latest value said
      (action values and annotated spans of the turns so far) that normalizes the same, of the
      same service and slot if there is one.
    """

    def __init__(self, schema: Mapping[str, SgdService]) -> None:
        self.schema = schema
        self.said: set[str] = set()
        self.by_slot: dict[tuple[str, str, str], str] = {}
        self.anywhere: dict[str, str] = {}

    def learn(self, turn: Mapping[str, Any]) -> None:
        """Take in one turn's action values and spans (call it for every turn up to the one restored)."""
        for frame in turn["frames"]:
            service = frame["service"].lower()
            for action in frame.get("actions", []):
                for value in action.get("values", []):
                    self._add(service, action.get("slot", ""), value)
            for span in frame.get("slots", []):
                self._add(service, span["slot"], turn["utterance"][span["start"] : span["exclusive_end"]])

    def _add(self, service: str, slot: str, value: str) -> None:
        key = normalize_sgd_value(value)
        self.said.add(value)
        self.by_slot[service, slot, key] = value
        self.anywhere[key] = value

    def restore(self, service: str, slot: str, value: str) -> str:
        schema_slot = self.schema[service].slots.get(slot) if service in self.schema else None
        key = normalize_sgd_value(value)
        if schema_slot is not None and schema_slot.is_categorical:
            choices = [*schema_slot.possible_values, "dontcare"]
            if value in choices:
                return value
            return next((choice for choice in choices if normalize_sgd_value(choice) == key), value)
        if value in self.said:
            return value
        return self.by_slot.get((service, slot, key)) or self.anywhere.get(key, value)


def official_dialogues(predictions: Predictions, references: SgdReferences, source: str | Path) -> OfficialDialogues:
    """The predicted dialogues in SGD's format, values respelled; k predicted turns keep the first 2k of the dialogue."""
    gold = references.dialogues()
    check_coverage(predictions, {d: sum(t["speaker"] == "USER" for t in x["turns"]) for d, x in gold.items()}, source)
    written: OfficialDialogues = {}
    for dialogue_id, predicted_turns in predictions.items():
        spellings = Spellings(references.schema)
        turns = []
        for index, turn in enumerate(gold[dialogue_id]["turns"][: 2 * len(predicted_turns)]):
            spellings.learn(turn)
            if turn["speaker"] == "USER":
                predicted = predicted_turns[index // 2]
                if predicted.state is None:
                    raise PredictionError(source, "no 'state' to score", dialogue_id, index // 2)
                turn = _predicted_turn(turn, predicted.state, spellings)
            turns.append(turn)
        written[dialogue_id] = {**gold[dialogue_id], "turns": turns}
    return written


def _predicted_turn(turn: dict[str, Any], predicted: BeliefState, spellings: Spellings) -> dict[str, Any]:
    """A USER turn whose frames carry the predicted state instead of the reference's spans and state."""
    state = {domain.lower(): slots for domain, slots in predicted.items()}
    frames = []
    for frame in turn["frames"]:
        service = frame["service"].lower()
        values = {slot: [spellings.restore(service, slot, value)] for slot, value in state.get(service, {}).items()}
        kept = {key: value for key, value in frame.items() if key not in ("slots", "state")}
        frames.append(kept | {"state": {"active_intent": "NONE", "requested_slots": [], "slot_values": values}})
    return {**turn, "frames": frames}


def write_prediction_dir(dialogues: OfficialDialogues, references: SgdReferences, folder: str | Path) -> list[Path]:
    """One ``dialogues_NNN.json`` per released file that holds predicted dialogues, in release order.

    The official evaluator reads every ``*.json`` of the folder, so one holding
    other JSON files is refused rather than scored together with them.
    """
    folder = Path(folder)
    planned = [(name, [dialogues[r["dialogue_id"]] for r in records if r["dialogue_id"] in dialogues])
               for name, records in references.files]
    planned = [(name, chosen) for name, chosen in planned if chosen]
    strangers = sorted({p.name for p in folder.glob("*.json")} - {name for name, _ in planned} - {METRICS_FILE})
    if strangers:
        raise DataError(folder, f"holds other JSON files, which SGD's evaluator would read too: {', '.join(strangers)}")
    folder.mkdir(parents=True, exist_ok=True)
    for name, chosen in planned:
        (folder / name).write_text(json.dumps(chosen, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return [folder / name for name, _ in planned]


def read_prediction_dir(folder: str | Path) -> OfficialDialogues:
    """Every dialogue of a predictions folder as the official evaluator collects them: all ``*.json`` but its output."""
    folder = Path(folder)
    files = sorted(p for p in folder.glob("*.json") if p.name != METRICS_FILE)
    if not files:
        raise PredictionError(folder, "no *.json prediction files in this folder")
    found: OfficialDialogues = {}
    for path in files:
        for dialogue in _file_dialogues(path):
            found[dialogue["dialogue_id"]] = dialogue
    return found


def _file_dialogues(path: Path) -> Iterator[dict[str, Any]]:
    _, content = read_file_json(path)
    dialogues = list(content.values()) if isinstance(content, dict) else content
    if not isinstance(dialogues, list):
        raise PredictionError(path, f"expected a list of dialogues, found {type(content).__name__}")
    for index, dialogue in enumerate(dialogues):
        if not isinstance(dialogue, dict) or not isinstance(dialogue.get("dialogue_id"), str):
            raise PredictionError(path, "a dialogue has no dialogue_id", f"#{index}")
        if not isinstance(dialogue.get("turns"), list) or not isinstance(dialogue.get("services"), list):
            raise PredictionError(path, "a dialogue needs 'services' and 'turns' lists", dialogue["dialogue_id"])
        yield dialogue
