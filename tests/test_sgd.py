"""SGD reader on the real dev split, on small hand-made files, and on broken ones."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.errors import DataError
from todrl.data.sgd import count_sgd_services, iter_sgd, load_sgd, load_sgd_schema

PLACEHOLDER = re.compile(r"\[value_(\w+)\]")
SGD_ACTS = set(
    "inform request confirm offer notify_success notify_failure inform_count offer_intent req_more goodbye".split()
)


@pytest.fixture(scope="session")
def sgd_dir() -> Path:
    return require_data("sgd")


@pytest.fixture(scope="session")
def dev(sgd_dir):
    return load_sgd(sgd_dir, "dev")


@pytest.fixture(scope="session")
def dev_schema(sgd_dir):
    return load_sgd_schema(sgd_dir, "dev")


@pytest.mark.slow
def test_dev_size(dev):
    assert len(dev) == 2482 and sum(len(d.turns) for d in dev) == 24363
    assert len({d.id for d in dev}) == 2482 and {d.dataset for d in dev} == {"sgd"}


@pytest.mark.slow
def test_first_dialogue_by_hand(dev):
    dialogue = dev[0]
    assert (dialogue.id, dialogue.services) == ("1_00000", ["restaurants_2"])
    first, second, third = dialogue.turns[:3]
    assert first.user == "i want to make a restaurant reservation for 2 people at half past 11 in the morning ."
    assert first.belief_state == {"restaurants_2": {"number_of_seats": "2", "time": "half past 11 in the morning"}}
    assert first.dialogue_act == {"restaurants_2": {"request": ["restaurant_name", "location"]}}
    assert first.system_delex == first.system
    assert first.system == "what city do you want to dine in ? do you have a preferred restaurant ?"
    assert second.system_delex == (
        "confirming : i will reserve a table for [value_number_of_seats] people at [value_restaurant_name] in"
        " [value_location] . the reservation time is [value_time] [value_date] ."
    )
    assert third.requested_slots == {"restaurants_2": ["phone_number"]}
    assert third.system_delex == "your reservation has been made . their phone number is [value_phone_number] ."
    assert third.dialogue_act == {"restaurants_2": {"inform": ["phone_number"], "notify_success": []}}
    assert third.booked_domains == ["restaurants_2"]
    # Slots keep the order they were first mentioned in; all equivalent values are kept, the first one in the state.
    order = ["number_of_seats", "time", "location", "restaurant_name", "date"]
    assert list(third.belief_state["restaurants_2"]) == order
    assert third.gold_values["restaurants_2"]["time"] == ["11:30", "half past 11 in the morning"]
    assert third.belief_state["restaurants_2"]["time"] == "11:30"
    goal = dialogue.goal["restaurants_2"]
    assert goal.requestable == ["phone_number", "address", "has_vegetarian_options"]
    assert goal.informable["restaurant_name"] == "sino"


@pytest.mark.slow
def test_annotations_stay_in_the_schema(dev, dev_schema):
    for dialogue in dev:
        assert set(dialogue.services) <= set(dev_schema)
        for turn in dialogue.turns:
            for service, state in turn.belief_state.items():
                assert set(state) <= set(dev_schema[service].informable)
                assert {slot: values[0] for slot, values in turn.gold_values[service].items()} == state
            for service, slots in turn.requested_slots.items():
                assert set(slots) <= set(dev_schema[service].slots)
            for acts in turn.dialogue_act.values():
                assert set(acts) <= SGD_ACTS
            known = {slot for service in dialogue.services for slot in dev_schema[service].slots} | {"count"}
            assert set(PLACEHOLDER.findall(turn.system_delex)) <= known, (dialogue.id, turn.system_delex)


@pytest.mark.slow
def test_schema(dev_schema):
    restaurants = dev_schema["restaurants_2"]
    assert restaurants.slots["number_of_seats"].is_categorical and restaurants.slots["number_of_seats"].is_informable
    assert not restaurants.slots["phone_number"].is_informable
    assert restaurants.intents["ReserveRestaurant"].required_slots == ["restaurant_name", "location", "time"]
    assert "phone_number" not in restaurants.informable and "category" in restaurants.informable


def _frame(service, *, state=None, requested=(), actions=None, spans=()):
    frame = {"service": service, "slots": [{"slot": s, "start": a, "exclusive_end": b} for s, a, b in spans]}
    if actions is not None:
        frame["actions"] = [{"act": act, "slot": slot, "values": values} for act, slot, values in actions]
    if state is not None:
        frame["state"] = {"active_intent": "Any", "requested_slots": list(requested), "slot_values": state}
    return frame


def _turn(speaker, utterance, *frames):
    return {"speaker": speaker, "utterance": utterance, "frames": list(frames)}


def _span(text, slot, words):
    start = text.index(words)
    return slot, start, start + len(words)


def _write(folder: Path, *files, schema=()) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for number, dialogues in enumerate(files, start=1):
        (folder / f"dialogues_{number:03d}.json").write_text(json.dumps(dialogues))
    (folder / "schema.json").write_text(json.dumps(list(schema)))
    return folder


BOOKING = "Booked 2 seats at Sino, San Jose. Price range is moderate."


def _booking_dialogue(dialogue_id="9_00001"):
    user = "Book 2 seats at Sino in San Jose."
    state = {"number_of_seats": ["2"], "restaurant_name": ["Sino"], "location": ["San Jose", "SJ"]}
    spans = [
        _span(BOOKING, "restaurant_name", "Sino"),
        _span(BOOKING, "location", "San Jose"),
        _span(BOOKING, "city", "San"),
    ]
    actions = [
        ("CONFIRM", "number_of_seats", ["2"]),
        ("INFORM", "price_range", ["moderate"]),
        ("INFORM", "has_vegetarian_options", ["True"]),
        ("NOTIFY_SUCCESS", "", []),
    ]
    return {
        "dialogue_id": dialogue_id,
        "services": ["Restaurants_2"],
        "turns": [
            # A first-release user frame: no actions.
            _turn("USER", user, _frame("Restaurants_2", state=state, spans=[_span(user, "location", "San Jose")])),
            _turn("SYSTEM", BOOKING, _frame("Restaurants_2", actions=actions, spans=spans)),
        ],
    }


def test_spans_and_spoken_categorical_values_become_placeholders(tmp_path):
    (dialogue,) = load_sgd(_write(tmp_path, [_booking_dialogue()]), "dev")
    (turn,) = dialogue.turns
    # The overlapping "San" span loses to the longer "San Jose"; "True" is never said, "moderate" and "2" are.
    assert turn.system_delex == (
        "booked [value_number_of_seats] seats at [value_restaurant_name] , [value_location] ."
        " price range is [value_price_range] ."
    )
    values = {"number_of_seats": ["2"], "restaurant_name": ["sino"], "location": ["san jose", "sj"]}
    assert turn.gold_values == {"restaurants_2": values}
    assert turn.dialogue_act["restaurants_2"]["inform"] == ["price_range", "has_vegetarian_options"]


def _two_service_dialogue():
    ask, answer = "Find a bus, then a hotel.", "Which city?"
    later, reply = "What is the hotel's phone?", "It is 555-1234."
    phone = _span(reply, "phone_number", "555-1234")
    return {
        "dialogue_id": "9_00002",
        "services": ["Buses_1", "Hotels_4"],
        "turns": [
            _turn("USER", ask, _frame("Buses_1", state={"to_location": ["LA"]})),
            _turn("SYSTEM", answer, _frame("Buses_1", actions=[("REQUEST", "from_location", [])])),
            _turn("USER", later, _frame("Hotels_4", state={"location": ["LA"]}, requested=["phone_number"])),
            _turn("SYSTEM", reply, _frame("Hotels_4", actions=[("INFORM", "phone_number", [])], spans=[phone])),
        ],
    }


def test_states_follow_the_turns_frames_and_goals_every_service(tmp_path):
    (dialogue,) = load_sgd(_write(tmp_path, [_two_service_dialogue()]), "dev")
    first, second = dialogue.turns
    assert first.belief_state == {"buses_1": {"to_location": "la"}} and first.active_domains == ["buses_1"]
    assert second.belief_state == {"hotels_4": {"location": "la"}}  # no bus frame in this turn
    assert second.system_delex == "it is [value_phone_number] ."
    assert dialogue.goal["buses_1"].informable == {"to_location": "la"} and dialogue.goal["buses_1"].requestable == []
    assert dialogue.goal["hotels_4"].requestable == ["phone_number"]


@pytest.mark.slow
def test_service_filter_and_counts(tmp_path, sgd_dir):
    with zipfile.ZipFile(sgd_dir / "dev.zip") as archive:  # one real file: 94 flights, 29 restaurants, 5 rides
        real = json.loads(archive.read("dialogues_001.json"))
    folder = _write(tmp_path / "dev", real, [_booking_dialogue(), _two_service_dialogue()])
    everything = load_sgd(tmp_path, "dev")
    kept = load_sgd(tmp_path, "dev", services=["Restaurants_2", "hotels_4", "RideSharing_1"])
    wanted = {"restaurants_2", "hotels_4", "ridesharing_1"}
    assert [d.id for d in kept] == [d.id for d in everything if set(d.services) <= wanted]
    assert len(kept) == 29 + 5 + 1  # the bus-and-hotel dialogue needs both services listed
    counts = count_sgd_services(folder, "dev")
    assert list(counts)[:2] == ["flights_3", "restaurants_2"]
    assert (counts["restaurants_2"].dialogues, counts["restaurants_2"].alone) == (30, 30)
    assert (counts["hotels_4"].dialogues, counts["hotels_4"].alone) == (1, 0)
    assert counts["flights_3"].alone == len(load_sgd(folder, "dev", services=["flights_3"])) == 94


def test_reading_is_lazy_and_names_the_broken_file(tmp_path):
    folder = _write(tmp_path, [_booking_dialogue()], [_two_service_dialogue()])
    text = (folder / "dialogues_002.json").read_text()
    (folder / "dialogues_002.json").write_text(text[: len(text) // 2])
    dialogues = iter_sgd(folder, "val")
    assert next(dialogues).id == "9_00001"
    with pytest.raises(DataError, match=r"dialogues_002\.json: .*JSON"):
        next(dialogues)


def _broken(change):
    record = _booking_dialogue()
    change(record)
    return record


@pytest.mark.parametrize(
    ("record", "message", "where"),
    [
        (_broken(lambda r: r["turns"].pop()), "1 turns: a USER turn has no SYSTEM reply", "dialogue 9_00001"),
        (_broken(lambda r: r["turns"][1].update(speaker="USER")), "expected a SYSTEM turn", "dialogue 9_00001, turn 1"),
        (
            _broken(lambda r: r["turns"][1]["frames"][0]["slots"][0].update(exclusive_end=999)),
            "lies outside the 58-character utterance",
            "dialogue 9_00001, turn 1",
        ),
        (_broken(lambda r: r["turns"][0]["frames"][0].pop("state")), "state.slot_values", "dialogue 9_00001, turn 0"),
        (_broken(lambda r: r.pop("services")), "'services' should be a non-empty list", "dialogue 9_00001"),
        (_broken(lambda r: r.pop("dialogue_id")), "no dialogue_id", "dialogue #0"),
    ],
)
def test_bad_records_name_dialogue_and_turn(tmp_path, record, message, where):
    folder = _write(tmp_path, [record])
    with pytest.raises(DataError, match=re.escape(message)) as caught:
        load_sgd(folder, "dev")
    assert str(caught.value).startswith(f"{folder / 'dialogues_001.json'}: {where}: ")


def test_broken_archives_and_layouts(tmp_path):
    (tmp_path / "dev.zip").write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(DataError, match=r"dev\.zip: not a readable zip archive"):
        load_sgd(tmp_path, "dev")
    with zipfile.ZipFile(tmp_path / "dev.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("dev/dialogues_001.json", json.dumps([_booking_dialogue()] * 20))
    damaged = bytearray((tmp_path / "dev.zip").read_bytes())
    damaged[100:140] = bytes(40)  # inside the compressed member; the directory at the end stays whole
    (tmp_path / "dev.zip").write_bytes(bytes(damaged))
    with pytest.raises(DataError, match=r"dev\.zip/dev/dialogues_001\.json: cannot be read from the archive"):
        load_sgd(tmp_path, "dev")
    with pytest.raises(DataError, match="no SGD test split here"):
        load_sgd(tmp_path, "test")
    with pytest.raises(ValueError, match="unknown SGD split 'eval'"):
        load_sgd(tmp_path, "eval")
    _write(tmp_path / "train", [], schema=[{"service_name": "Bad_1", "slots": []}])
    with pytest.raises(DataError, match=r"schema\.json: service 'Bad_1' is malformed"):
        load_sgd_schema(tmp_path, "train")
