"""Lexicalization on real test turns: gold replies filled from the rows their gold states select."""

from __future__ import annotations

import json
import zipfile

import pytest

from todrl.data.errors import DataError
from todrl.data.incar import load_incar, load_incar_kbs
from todrl.data.multiwoz import load_multiwoz
from todrl.lexicalize import InCarLexicalizer, MultiWozLexicalizer, booking_reference


@pytest.fixture(scope="module")
def multiwoz(data_dir):
    dialogues = {d.id: d for d in load_multiwoz(data_dir / "multiwoz21", "test")}
    return dialogues, MultiWozLexicalizer(data_dir / "multiwoz21" / "db")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dialogue_id", "turn", "name", "phone"),
    [("pmul1172", 1, "nusha", "01223902158"), ("mul0264", 2, "frankie and bennys", "01223412430"),
     ("mul2321", 1, "maharajah tandoori restaurant", "01223358399")],
)
def test_gold_reply_of_a_turn_naming_its_venue_gets_the_real_name_and_phone(multiwoz, dialogue_id, turn, name, phone):
    dialogues, lexicalize = multiwoz
    gold = dialogues[dialogue_id].turns[turn]
    out = lexicalize(gold.system_delex, gold.belief_state, gold.dialogue_act)
    assert name in out.text and phone in out.text and name in gold.system and phone in gold.system
    assert out.unfilled == [] and name in next(iter(out.db.values()))["entity"]["name"]


@pytest.mark.slow
def test_choice_counts_the_rows_and_trains_are_the_first_to_leave(multiwoz, data_dir):
    _, lexicalize = multiwoz
    rows = json.loads((data_dir / "multiwoz21" / "db" / "restaurant_db.json").read_text())
    chinese = [r for r in rows if r["area"] == "centre" and r["food"] == "chinese"]
    out = lexicalize("there are [value_choice] , like [value_name] and [value_name] .",
                     {"restaurant": {"food": "chinese", "area": "centre"}})
    assert out.text == f"there are {len(chinese)} , like {chinese[0]['name'].lower()} and {chinese[1]['name'].lower()} ."
    assert out.db["restaurant"]["matches"] == len(chinese)

    trains = json.loads((data_dir / "multiwoz21" / "db" / "train_db.json").read_text())
    route = [t for t in trains if (t["departure"], t["destination"], t["day"]) == ("cambridge", "ely", "monday") and t["leaveAt"] >= "10:00"]
    first = min(route, key=lambda t: t["leaveAt"])
    state = {"train": {"departure": "cambridge", "destination": "ely", "day": "monday", "leave": "10:00", "people": "2"}}
    out = lexicalize("[value_id] leaves at [value_leave] , [value_time] , for [value_people] : [value_reference]", state)
    reference = booking_reference("train", state["train"])
    assert out.text == f"{first['trainID'].lower()} leaves at {first['leaveAt']} , {first['duration']} , for 2 : {reference}"


@pytest.mark.slow
def test_what_cannot_be_filled_stays_visible_and_is_reported(multiwoz):
    _, lexicalize = multiwoz
    out = lexicalize("[value_name] serves it . the hospital is at [value_address] , call [value_phone] .",
                     {"restaurant": {"food": "klingon"}, "hospital": {"department": "paediatric day unit"}},
                     {"hospital": {"inform": ["address", "phone"]}})
    # hospital_db.json has departments and phones (the first paediatric day unit row: 01223217567) but no
    # addresses; no restaurant serves klingon food.
    assert out.text == "[value_name] serves it . the hospital is at [value_address] , call 01223217567 ."
    assert out.unfilled == ["[value_name]", "[value_address]"]
    assert out.db["restaurant"] == {"matches": 0, "entity": None}


def test_booking_references_are_fixed_by_the_booking():
    booking = {"name": "nusha", "people": "2"}
    reference = booking_reference("restaurant", booking)
    assert len(reference) == 8 and reference.isalnum()
    assert booking_reference("restaurant", dict(reversed(booking.items()))) == reference
    assert booking_reference("restaurant", {**booking, "people": "3"}) != reference


@pytest.fixture(scope="module")
def incar(data_dir):
    path = data_dir / "kvret"
    return {d.id: d for d in load_incar(path, "test")}, load_incar_kbs(path, "test")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("dialogue_id", "turn", "real"),
    [
        # KB row: chevron, gas station, 783 Arcadia Pl; the state says "gas stations".
        ("d70e1162-8bcb-4f28-9d14-078f90974351", 2, "783 arcadia pl is the address for chevron gas station"),
        # alhambra, friday: "clear skies, low of 20F, high of 30F".
        ("db03e551-eca1-44ec-af26-2959190e2316", 2, "it will be between 20-30f in alhambra on friday ."),
        ("79d16b26-af51-4305-a865-9a8e01ba6bcf", 1, "your doctor appointment on wednesday is at 19:00 with your father ."),
    ],
)
def test_incar_gold_reply_is_filled_from_the_dialogue_kb(incar, dialogue_id, turn, real):
    dialogues, kbs = incar
    gold = dialogues[dialogue_id].turns[turn]
    assert gold.system_delex != real
    assert InCarLexicalizer(kbs[dialogue_id])(gold.system_delex, gold.belief_state).text == gold.system == real


def test_a_malformed_kb_is_an_error_naming_the_dialogue(tmp_path):
    record = {"scenario": {"uuid": "d1", "task": {"intent": "navigate"}, "kb": {"items": "chevron"}}, "dialogue": []}
    with zipfile.ZipFile(tmp_path / "kvret_dataset_public.zip", "w") as archive:
        archive.writestr("kvret_test_public.json", json.dumps([record]))
    with pytest.raises(DataError, match="dialogue d1.*scenario.kb.items should be a list of rows"):
        load_incar_kbs(tmp_path, "test")
