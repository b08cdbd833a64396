"""In-Car (KVRET) reader on the real release, on small hand-made files, and on broken ones."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.errors import DataError
from todrl.data.incar import (
    INCAR_DOMAINS,
    INCAR_INFORMABLE,
    INCAR_REQUESTABLE,
    INCAR_VALUE_SLOTS,
    load_incar,
    load_incar_entities,
)

PLACEHOLDER = re.compile(r"\[value_(\w+)\]")


@pytest.fixture(scope="session")
def kvret_dir() -> Path:
    return require_data("kvret")


@pytest.fixture(scope="session")
def splits(kvret_dir):
    return {split: load_incar(kvret_dir, split) for split in ("train", "dev", "test")}


@pytest.mark.slow
def test_split_sizes(splits, kvret_dir):
    assert {split: len(dialogues) for split, dialogues in splits.items()} == {"train": 2425, "dev": 302, "test": 304}
    assert {split: sum(len(d.turns) for d in dialogues) for split, dialogues in splits.items()} == {
        "train": 6291,
        "dev": 777,
        "test": 808,
    }
    assert [d.id for d in load_incar(kvret_dir / "kvret_dataset_public.zip", "val")] == [d.id for d in splits["dev"]]
    ids = [d.id for dialogues in splits.values() for d in dialogues]
    assert len(set(ids)) == len(ids)


@pytest.mark.slow
def test_parking_garage_dialogue_by_hand(splits):
    dialogue = splits["train"][0]
    assert dialogue.id == "118f8056-0e66-43df-8eb8-bfe9056ca01a"
    assert (dialogue.dataset, dialogue.services) == ("incar", ["navigate"])
    first, second, third = dialogue.turns
    assert first.user == "where 's the nearest parking garage"
    assert first.system_delex == (
        "the nearest parking garage is [value_poi] at [value_address] . would you like directions there ?"
    )
    assert first.belief_state == {"navigate": {"distance": "nearest", "poi_type": "parking garage"}}
    assert first.requested_slots == {"navigate": ["address", "distance"]}  # poi_type is flagged but not requestable
    assert first.dialogue_act == {} and first.active_domains == ["navigate"]
    # "avoid heavy traffic" (traffic_info) and "dish parking" (poi) are not informable: the state stays.
    assert second.belief_state == first.belief_state
    assert second.system_delex.endswith("find the quickest route to [value_address] .")
    assert third.system_delex == "you 're very welcome !" and third.requested_slots == {}
    goal = dialogue.goal["navigate"]
    assert goal.informable == {"distance": "nearest", "poi_type": "parking garage"}
    assert goal.requestable == ["address", "distance", "poi", "traffic_info"]


@pytest.mark.slow
def test_weather_dialogue_keeps_what_the_driver_said(splits):
    dialogue = next(d for d in splits["train"] if d.id == "89cae425-6ff7-48b4-8b42-ec50b541dc63")
    first, second, _ = dialogue.turns
    assert first.system_delex == (
        "the weather this week will be [value_weather_attribute] and [value_weather_attribute] on thursday and sunday"
        " , with the [value_weather_attribute] being [value_temperature] and the highest [value_temperature] ,"
        " monday will be the only [value_weather_attribute] day ."
    )
    # "new york" and "friday" came from the driver; "cloudy" is what the assistant adds.
    assert second.system_delex == "on friday it will be [value_weather_attribute] on new york"
    state = {"location": "new york", "weather_attribute": "overcast", "date": "friday"}
    assert second.belief_state == {"weather": state}


@pytest.mark.slow
def test_annotations_stay_in_the_ontology(splits):
    assert sum(len(slots) for slots in INCAR_INFORMABLE.values()) == 11
    seen = set()
    for dialogue in (d for dialogues in splits.values() for d in dialogues):
        (domain,) = dialogue.services
        assert domain in INCAR_DOMAINS and list(dialogue.goal) == [domain]
        delexicalized = set(INCAR_REQUESTABLE[domain]) | ({"temperature"} if domain == "weather" else set())
        for turn in dialogue.turns:
            assert set(turn.belief_state.get(domain, {})) <= set(INCAR_INFORMABLE[domain])
            assert set(turn.requested_slots.get(domain, [])) <= set(INCAR_REQUESTABLE[domain])
            slots = set(PLACEHOLDER.findall(turn.system_delex))
            assert slots <= delexicalized, (dialogue.id, turn.system_delex)
            seen |= slots
            assert turn.user == turn.user.lower() and "  " not in turn.system_delex
    assert seen == set(INCAR_VALUE_SLOTS)


@pytest.mark.slow
def test_entities_are_normalized_like_the_text(kvret_dir):
    entities = load_incar_entities(kvret_dir)
    assert "17:00" in entities["time"] and "5pm" not in entities["time"]
    assert "dish parking" in entities["poi"] and "550 alester ave" in entities["address"]
    assert "parking garage" in entities["poi_type"] and "new york" in entities["location"]


ENTITIES = {
    "event": ["dinner"],
    "time": ["5pm"],
    "date": ["monday"],
    "party": ["Tom"],
    "location": ["boston"],
    "weather_attribute": ["rain", "snow"],
    "traffic_info": ["heavy traffic"],
    "poi_type": ["gas station"],
    "poi": [{"poi": "Valero", "address": "200 Alester Ave", "type": "gas station"}],
    "distance": [1, 2],
    "temperature": [50],
}


def _driver(text):
    return {"turn": "driver", "data": {"end_dialogue": False, "utterance": text}}


def _assistant(text, slots=None, requested=()):
    flags = {slot: slot in requested for slot in ("poi", "address", "distance", "poi_type", "traffic_info")}
    data = {"end_dialogue": False, "utterance": text, "slots": slots or {}, "requested": flags}
    return {"turn": "assistant", "data": data}


def _dialogue(uuid, turns, intent="navigate", items=None):
    return {"dialogue": turns, "scenario": {"uuid": uuid, "task": {"intent": intent}, "kb": {"items": items}}}


def _write(folder: Path, dialogues, split="dev", entities=ENTITIES) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "kvret_entities.json").write_text(json.dumps(entities))
    (folder / f"kvret_{split}_public.json").write_text(json.dumps(dialogues))
    return folder


def test_repeated_speakers_are_merged_and_a_lone_last_question_dropped(tmp_path):
    turns = [
        _driver("Find a gas station."),
        _driver("The nearest one."),
        _assistant("Valero is 2 miles away.", {"poi_type": "gas station", "distance": "nearest"}, ["poi"]),
        _assistant("It is at 200 Alester Avenue.", {"poi": "valero"}, ["address"]),
        _driver("Thanks."),
        _assistant("You're welcome."),
        _driver("Bye."),
    ]
    items = [{"poi": "Shell", "address": "12 Oak Rd", "distance": "4 miles", "traffic_info": "no traffic"}]
    (dialogue,) = load_incar(_write(tmp_path, [_dialogue("d1", turns, items=items)]), "dev")
    assert [turn.user for turn in dialogue.turns] == ["find a gas station . the nearest one .", "thanks ."]
    first = dialogue.turns[0]
    assert first.system == "valero is 2 miles away . it is at 200 alester avenue ."
    assert first.system_delex == "[value_poi] is [value_distance] away . it is at [value_address] ."
    assert first.requested_slots == {"navigate": ["poi", "address"]}
    assert first.belief_state == {"navigate": {"poi_type": "gas station", "distance": "nearest"}}
    assert dialogue.turns[1].system_delex == "you 're welcome ."


def test_kb_rows_add_values_and_driver_words_stay(tmp_path):
    turns = [
        _driver("Is Shell near?"),
        _assistant("Shell is 4 miles away at 12 Oak Road, no traffic.", {"poi": "shell"}),
    ]
    items = [{"poi": "Shell", "address": "12 Oak Rd", "distance": "4 miles", "traffic_info": "no traffic"}]
    (dialogue,) = load_incar(_write(tmp_path, [_dialogue("d1", turns, items=items)]), "dev")
    # "shell" was said by the driver; the KB row supplies the address and its "road" spelling.
    delexicalized = "shell is [value_distance] away at [value_address] , [value_traffic_info] ."
    assert dialogue.turns[0].system_delex == delexicalized


def test_zip_and_folder_read_the_same(tmp_path):
    turns = [
        _driver("Remind me of dinner with Tom at 5 pm."),
        _assistant("Done, 5pm with Tom.", {"event": "dinner", "time": "5 pm", "party": "Tom"}),
    ]
    folder = _write(tmp_path / "plain", [_dialogue("d1", turns, intent="schedule")], split="test")
    archive = tmp_path / "kvret_dataset_public.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for file in folder.iterdir():
            zipped.write(file, f"kvret/{file.name}")
    from_folder, from_zip, from_parent = (load_incar(p, "test") for p in (folder, archive, tmp_path))
    assert from_folder == from_zip == from_parent
    (turn,) = from_folder[0].turns
    assert turn.belief_state == {"schedule": {"event": "dinner", "time": "17:00", "party": "tom"}}
    assert turn.system_delex == "done , 17:00 with tom ."  # all three were said by the driver


def test_unknown_split_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown In-Car split 'validate'"):
        load_incar(tmp_path, "validate")


@pytest.mark.parametrize(
    ("record", "message", "where"),
    [
        (_dialogue("d9", [_driver("hi")], intent="restaurant"), "scenario.task.intent is 'restaurant'", "dialogue d9"),
        ({"dialogue": [], "scenario": {"task": {"intent": "weather"}}}, "no scenario.uuid", "dialogue #1"),
        (
            _dialogue("d9", [_driver("hi"), {"turn": "system", "data": {"utterance": "x"}}]),
            "'driver' or 'assistant'",
            "dialogue d9, turn 1",
        ),
        (_dialogue("d9", [_driver("hi"), _assistant("ok", {"poi": 3})]), "data.slots should", "dialogue d9, turn 1"),
        (_dialogue("d9", [{"turn": "driver", "data": {}}]), "no data.utterance", "dialogue d9, turn 0"),
    ],
)
def test_bad_records_name_dialogue_and_turn(tmp_path, record, message, where):
    good = _dialogue("d0", [_driver("hi"), _assistant("hello")])
    folder = _write(tmp_path, [good, record])
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_incar(folder, "dev")
    assert str(caught.value).startswith(f"{folder / 'kvret_dev_public.json'}: {where}: ")


def test_broken_files_are_reported_by_path(tmp_path):
    folder = _write(tmp_path / "cut", [_dialogue("d0", [_driver("hi"), _assistant("hello")])])
    text = (folder / "kvret_dev_public.json").read_text()
    (folder / "kvret_dev_public.json").write_text(text[: len(text) // 2])
    with pytest.raises(DataError, match=r"kvret_dev_public\.json: not valid JSON"):
        load_incar(folder, "dev")
    with pytest.raises(DataError, match="neither kvret_train_public.json nor kvret_dataset_public.zip"):
        load_incar(folder, "train")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match=r"bad\.zip: not a readable zip archive"):
        load_incar(tmp_path / "bad.zip", "dev")
    _write(tmp_path / "odd", [], entities={"poi": ["Valero"]})
    with pytest.raises(DataError, match="a poi entry should have 'poi', 'address' and 'type'"):
        load_incar(tmp_path / "odd", "dev")
