"""MultiWOZ reader on the real val/test files, the embedded sample, and malformed inputs."""

from __future__ import annotations

import copy
import json
import pickle
import re
import zipfile
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.errors import DataError
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz, read_records
from todrl.data.normalize import ACTS, INFORMABLE_SLOTS, PLACEHOLDER_SLOTS, REQUESTABLE_SLOTS, SLOTS, normalize_text
from todrl.data.records import Goal, Turn


@pytest.fixture(scope="session")
def multiwoz_dir() -> Path:
    return require_data("multiwoz21")


@pytest.fixture(scope="session")
def val(multiwoz_dir):
    return load_multiwoz(multiwoz_dir, "val")


@pytest.fixture(scope="session")
def test_split(multiwoz_dir):
    return load_multiwoz(multiwoz_dir, "test")


@pytest.fixture(scope="session")
def by_id(val, test_split):
    return {d.id: d for d in val + test_split}


def _list_ids(path: Path) -> list[str]:
    return [line.strip().lower().removesuffix(".json") for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_split_sizes_and_ids(multiwoz_dir, val, test_split):
    assert len(val) == 999 and len(test_split) == 1000
    assert [d.id for d in val] == _list_ids(multiwoz_dir / "valListFile")
    assert {d.id for d in test_split} == set(_list_ids(multiwoz_dir / "testListFile"))
    assert test_split[0].id == "sng0073"
    assert {d.dataset for d in val} == {"multiwoz21"}


@pytest.mark.slow
def test_turn_counts(multiwoz_dir, val, test_split):
    raw = read_records(multiwoz_dir, "val")
    assert all(len(d.turns) == len(raw[d.id]["log"]) // 2 for d in val)
    assert sum(len(d.turns) for d in val) == 7365
    assert sum(len(d.turns) for d in test_split) == 7372


@pytest.mark.slow
def test_sng0073_by_hand(by_id):
    dialogue = by_id["sng0073"]
    assert dialogue.services == ["taxi"]
    assert dialogue.goal == {
        "taxi": Goal(
            informable={"leave": "17:15", "destination": "pizza hut fen ditton", "departure": "saint john's college"},
            requestable=["car", "phone"],
            book={},
        )
    }
    assert dialogue.turns[1] == Turn(
        user="i want to leave after 17:15 .",
        system="booking completed ! your taxi will be blue honda contact number is 07218068540",
        system_delex="booking completed ! your taxi will be [value_car] contact number is [value_phone]",
        belief_state={"taxi": {"destination": "pizza hut fenditton", "departure": "saint johns college", "leave": "17:15"}},
        dialogue_act={"taxi": {"inform": ["car", "phone"]}},
        requested_slots={},
        active_domains=["taxi"],
        booked_domains=["taxi"],
    )
    assert dialogue.turns[0].dialogue_act == {"taxi": {"request": ["leave", "arrive"]}}
    assert dialogue.turns[3].dialogue_act == {"general": {"bye": []}}
    assert dialogue.turns[3].active_domains == []


@pytest.mark.slow
def test_pmul4648_requests_and_mention_order(by_id):
    turns = by_id["pmul4648"].turns
    assert turns[3].requested_slots == {"attraction": ["address", "postcode"]}
    assert turns[3].dialogue_act == {"attraction": {"inform": ["postcode", "address"]}, "general": {"reqmore": []}}
    assert turns[3].system_delex == (
        "their address is [value_address] the postcode is [value_postcode] . is their anything else i can do for you ?"
    )
    assert turns[6].requested_slots == {"restaurant": ["address"]}
    assert list(turns[6].belief_state) == ["attraction", "restaurant"]
    assert turns[6].belief_state["restaurant"] == {
        "food": "indian", "area": "centre", "pricerange": "expensive", "name": "saffron brasserie",
    }  # fmt: skip
    assert list(turns[6].belief_state["restaurant"]) == ["food", "area", "pricerange", "name"]


@pytest.mark.slow
def test_sng01936_booking_acts_go_to_the_booked_domain(by_id):
    dialogue = by_id["sng01936"]
    assert dialogue.goal["hotel"].book == {"stay": "5", "day": "friday", "people": "1"}
    first, second = dialogue.turns[:2]
    assert first.dialogue_act == {"hotel": {"offerbook": []}}
    assert second.dialogue_act == {"hotel": {"offerbooked": ["reference"]}}
    assert second.system_delex == "your booking was successful . the reference number is : [value_reference] ."
    assert (first.booked_domains, second.booked_domains) == ([], ["hotel"])
    assert second.belief_state == {"hotel": {"name": "city centre north b and b", "stay": "5", "day": "friday", "people": "1"}}


@pytest.mark.slow
def test_every_annotation_is_in_the_shared_vocabulary(val, test_split):
    for dialogue in val + test_split:
        for domain, goal in dialogue.goal.items():
            assert set(goal.requestable) <= set(REQUESTABLE_SLOTS), (dialogue.id, goal)
            assert set(goal.informable) | set(goal.book) <= set(INFORMABLE_SLOTS[domain]), (dialogue.id, goal)
        for turn in dialogue.turns:
            for token in turn.system_delex.split():
                if token.startswith("["):
                    assert re.fullmatch(r"\[value_([a-z]+)\]", token) and token[7:-1] in PLACEHOLDER_SLOTS, token
            assert not re.search(r"\b0\d{10}\b|\btr\d{4}\b", turn.system_delex), turn.system_delex
            for domain, acts in turn.dialogue_act.items():
                assert set(acts) <= set(ACTS) and all(set(slots) <= set(SLOTS) for slots in acts.values())
            assert all(set(slots) <= set(REQUESTABLE_SLOTS) for slots in turn.requested_slots.values())
            for domain, slots in turn.belief_state.items():
                assert set(slots) <= set(INFORMABLE_SLOTS[domain]) and "" not in slots.values()


@pytest.mark.slow
def test_utterances_are_normalized(val):
    for dialogue in val[:200]:
        for turn in dialogue.turns:
            for text in (turn.user, turn.system, turn.system_delex):
                assert text == normalize_text(text) and text == text.lower()


def test_sample_splits_load():
    train, dev, test = (load_multiwoz(SAMPLE_PATH, split) for split in ("train", "val", "test"))
    assert (len(train), len(dev), len(test)) == (36, 4, 10)
    assert not {d.id for d in train} & {d.id for d in dev + test}
    sizes = {len(d.goal) for d in train}
    assert sizes == {1, 2, 3}
    assert {"restaurant", "hotel", "attraction", "train", "taxi"} <= {domain for d in train for domain in d.goal}
    assert (SAMPLE_PATH / "LICENSE").is_file() and (SAMPLE_PATH / "README.md").is_file()
    assert sum(p.stat().st_size for p in SAMPLE_PATH.rglob("*") if p.is_file()) < 1_000_000


@pytest.mark.slow
def test_sample_dialogues_equal_the_originals(by_id):
    for split in ("train", "val", "test"):
        for dialogue in load_multiwoz(SAMPLE_PATH, split):
            assert dialogue == by_id[dialogue.id]


def test_official_zip_layout_with_implicit_train_split(tmp_path):
    archive = tmp_path / "MultiWOZ_2.1.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name in ("data.json", "valListFile.txt", "testListFile.txt"):
            out.write(SAMPLE_PATH / name, f"MultiWOZ_2.1/{name}")
        out.writestr("__MACOSX/MultiWOZ_2.1/._data.json", b"\x00junk")
    for split in ("train", "val", "test"):
        assert [d.id for d in load_multiwoz(archive, split)] == [d.id for d in load_multiwoz(SAMPLE_PATH, split)]


# -- malformed input -------------------------------------------------------------------------------


def test_data_error_message_and_pickling():
    error = DataError(Path("data/val.json"), "bad span", dialogue_id="sng0073", turn=2)
    assert str(error) == "data/val.json: dialogue sng0073, turn 2: bad span"
    assert str(DataError("x.json", "truncated")) == "x.json: truncated"
    copy_ = pickle.loads(pickle.dumps(error))
    assert (str(copy_), copy_.dialogue_id, copy_.turn) == (str(error), "sng0073", 2)


@pytest.fixture(scope="module")
def raw_dialogue() -> tuple[str, dict]:
    records = read_records(SAMPLE_PATH, "test")
    name = next(i for i, record in records.items() if len(record["log"]) >= 6)
    return name, records[name]


def _write_val(folder: Path, name: str, record: dict) -> Path:
    (folder / "val.json").write_text(json.dumps({name.upper(): record}))
    return folder


def _load_broken(tmp_path, raw_dialogue, corrupt) -> str:
    name, record = raw_dialogue
    record = copy.deepcopy(record)
    corrupt(record["log"])
    with pytest.raises(DataError) as caught:
        load_multiwoz(_write_val(tmp_path, name, record), "val")
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'val.json'}: dialogue {name}"), message
    assert caught.value.dialogue_id == name
    return message


def test_error_odd_log_length(tmp_path, raw_dialogue):
    message = _load_broken(tmp_path, raw_dialogue, lambda log: log.pop())
    assert re.search(r"log has \d*[13579] entries; expected user/system pairs", message)


def test_error_missing_metadata(tmp_path, raw_dialogue):
    message = _load_broken(tmp_path, raw_dialogue, lambda log: log[3].update(metadata={}))
    assert ", turn 1: system entry log[3] has no 'metadata'" in message


def test_error_span_out_of_range(tmp_path, raw_dialogue):
    def corrupt(log):
        log[5]["span_info"] = [["Hotel-Inform", "Area", "north", 0, 99]]

    message = _load_broken(tmp_path, raw_dialogue, corrupt)
    assert ", turn 2: system entry log[5]: span_info[0]" in message and "covers tokens 0..99 but the text has" in message


@pytest.mark.parametrize(
    ("act", "expected"),
    [
        ({"Hotel-Dance": [["none", "none"]]}, "log[1]: unknown dialogue act 'Hotel-Dance'"),
        ({"Booking-Select": [["none", "none"]]}, "log[1]: unknown dialogue act 'Booking-Select'"),
        ({"Hotel-Inform": [["Colour", "red"]]}, "log[1]: dialog_act['Hotel-Inform'] has unknown slot 'Colour'"),
        ({"Hotel-Inform": [["Area"]]}, "log[1]: dialog_act['Hotel-Inform'] must be a list of [slot, value] pairs"),
    ],
)
def test_error_bad_act(tmp_path, raw_dialogue, act, expected):
    message = _load_broken(tmp_path, raw_dialogue, lambda log: log[1].update(dialog_act=act))
    assert f", turn 0: {expected}" in message


def test_error_truncated_json(tmp_path):
    content = (SAMPLE_PATH / "data.json").read_text()
    (tmp_path / "data.json").write_text(content[: len(content) // 2])
    (tmp_path / "valListFile.txt").write_text("SNG0073.json\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'data.json'}: not valid JSON at line 1, column")):
        load_multiwoz(tmp_path, "val")


def test_error_truncated_json_in_zip(tmp_path):
    with zipfile.ZipFile(tmp_path / "val.json.zip", "w") as out:
        out.writestr("val.json", '{"SNG0073": {"goal": {}, "log": [')
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'val.json.zip'}:val.json: not valid JSON")):
        load_multiwoz(tmp_path, "val")


@pytest.mark.slow
def test_error_missing_split_names_the_files_looked_for(multiwoz_dir):
    with pytest.raises(DataError, match="no train split here: looked for train.json.zip, train.json"):
        load_multiwoz(multiwoz_dir, "train")


def test_error_listed_dialogue_missing(tmp_path):
    (tmp_path / "data.json").write_text("{}")
    (tmp_path / "testListFile.txt").write_text("SNG0073.json\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'testListFile.txt'}: 1 listed dialogues are not in")):
        load_multiwoz(tmp_path, "test")


def test_error_bad_path_and_split(tmp_path):
    with pytest.raises(DataError, match="no such file or folder"):
        load_multiwoz(tmp_path / "missing", "val")
    with pytest.raises(ValueError, match="unknown MultiWOZ split 'dev'"):
        load_multiwoz(SAMPLE_PATH, "dev")
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(DataError, match="not a readable zip archive"):
        load_multiwoz(tmp_path / "broken.zip", "val")
