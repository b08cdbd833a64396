"""scripts/incar_errors.py puts known perturbations of real In-Car gold states down to the right error and cause."""

from __future__ import annotations

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data import load_dialogues
from todrl.evaluate.predictions import PredictedTurn

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("incar_errors", ROOT / "scripts" / "incar_errors.py")
errors = importlib.util.module_from_spec(spec)
sys.modules["incar_errors"] = errors  # dataclasses look their module up while the file runs
spec.loader.exec_module(errors)

SCHEDULE, NAVIGATE = "95c74b9f-b560-41ff-95da-6581d70514f9", "da812f06-522a-4cba-b963-7f72c2f3ca77"
"""Two dev dialogues: a meeting in conference room 100 on monday at 15:00; the way to a gas station."""


@pytest.fixture(scope="module")
def dialogues():
    found = {d.id: d for d in load_dialogues("incar", require_data("kvret"), "dev") if d.id in (SCHEDULE, NAVIGATE)}
    return [found[SCHEDULE], found[NAVIGATE]]


def gold_predictions(dialogues):
    return {d.id: [PredictedTurn(t.system_delex, copy.deepcopy(t.belief_state)) for t in d.turns] for d in dialogues}


def breakdown(dialogues, predictions, truncated=None):
    out = errors.Breakdown()
    errors.jga_breakdown(dialogues, predictions, errors.todrl_seen(dialogues), truncated or {}, out)
    return out


def test_gold_states_have_no_errors(dialogues):
    out = breakdown(dialogues, gold_predictions(dialogues))
    assert out.jga_failed == 0 and out.jga_turns == 5 and not out.jga_slots


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda s: s.update(time="11:00"), errors.SlotError("schedule-time", errors.WRONG, errors.OTHER)),
        (lambda s: s.pop("room"), errors.SlotError("schedule-room", errors.MISSING, errors.OTHER)),
        (lambda s: s.pop("date"), errors.SlotError("schedule-date", errors.MISSING, errors.IN_REPLY)),
        (lambda s: s.update(party="martha"), errors.SlotError("schedule-party", errors.EXTRA, errors.UNSEEN)),
        (lambda s: s.update(room="conference room"), errors.SlotError("schedule-room", errors.WRONG, errors.SPAN)),
        (lambda s: s.update(event="meetings"), errors.SlotError("schedule-event", errors.WRONG, errors.SPELLING)),
    ],
    ids=["changed value", "dropped slot", "dropped slot the reply names", "added slot", "shorter span", "plural"],
)
def test_a_perturbed_slot_is_put_down_to_its_cause(dialogues, change, expected):
    predictions = gold_predictions(dialogues)
    change(predictions[SCHEDULE][1].state["schedule"])
    out = breakdown(dialogues, predictions)
    assert out.jga_failed == 1 and dict(out.jga_slots) == {expected: 1} and dict(out.jga_new) == {expected: 1}


def test_errors_that_persist_are_counted_once_as_new(dialogues):
    predictions = gold_predictions(dialogues)
    for turn in predictions[NAVIGATE]:
        turn.state["navigate"]["poi_type"] = "parking garage"
    out = breakdown(dialogues, predictions)
    wrong = errors.SlotError("navigate-poi_type", errors.WRONG, errors.OTHER)
    assert out.jga_failed == 3 and out.jga_slots[wrong] == 3 and out.jga_new[wrong] == 1


def test_causes_read_the_reply_and_the_driver(dialogues):
    said = errors.Context(reply="", heard="address to the gas station", seen={})
    extra = errors.SlotError("navigate-poi_type", errors.EXTRA)
    assert errors.cause(extra, "gas station", "", said).cause == errors.SAID
    assert errors.cause(extra, "parking garage", "", said).cause == errors.UNSEEN
    seen = errors.Context(reply="", heard="", seen={"navigate-poi_type": {"parking garage"}})
    assert errors.cause(extra, "parking garage", "", seen).cause == errors.NOT_SAID
    in_reply = errors.Context(reply="your meeting is on monday", heard="", seen={"schedule-date": {"monday"}})
    missing = errors.SlotError("schedule-date", errors.MISSING)
    assert errors.cause(missing, "", "monday", in_reply).cause == errors.IN_REPLY
    assert errors.cause(missing, "next week", "monday", in_reply).cause == errors.DROPPED
    wrong = errors.SlotError("schedule-date", errors.WRONG)
    assert errors.cause(wrong, "friday", "monday", in_reply).cause == errors.OTHER
    assert errors.cause(wrong, "friday", "sunday", in_reply).cause == errors.UNSEEN


def test_truncation_maps_generations_to_their_turns(dialogues):
    texts = ["<sos_b> <eos_b> <sos_r> ok <eos_r>"] * 5
    texts[3] = "<sos_b> <eos_b> <sos_r> ok ok ok"
    assert errors.truncation(dialogues, texts, [False, False, False, True, False]) == {(NAVIGATE, 1): True}
