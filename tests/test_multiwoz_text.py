"""Text, slot and value normalization and span delexicalization (no dataset needed)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from todrl.data.delex import delexicalize
from todrl.data.normalize import (
    ACT_SLOT_NAMES,
    INFORMABLE_SLOTS,
    PLACEHOLDER_SLOTS,
    REQUESTABLE_SLOTS,
    SLOTS,
    normalize_text,
    normalize_time,
    normalize_value,
    requestable_slot_name,
    state_slot_name,
)


def test_vocabularies_are_one_vocabulary():
    assert set(PLACEHOLDER_SLOTS) <= set(SLOTS)
    assert set(REQUESTABLE_SLOTS) <= set(SLOTS)
    assert set(ACT_SLOT_NAMES.values()) == set(SLOTS)
    assert len(set(SLOTS)) == len(SLOTS)


def test_placeholder_names_are_those_of_the_standard_evaluator_files():
    assert set(PLACEHOLDER_SLOTS) == {
        "name", "choice", "area", "type", "price", "reference", "phone", "arrive", "id", "food", "leave",
        "address", "postcode", "day", "car", "stars", "time", "departure", "destination", "people", "stay",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("I would like a taxi from Saint John 's college .", "i would like a taxi from saint john 's college ."),
        ("It costs 13.20 pounds, leaves at 9:30 and arrives by 5:45pm.", "it costs 13.20 pounds , leaves at 09:30 and arrives by 17:45 ."),
        ("Don't! What's 2,828 trains...", "do n't ! what 's 2,828 trains ..."),
        ("at 5 p.m. or 12 am", "at 17:00 or 00:00"),
        ("call [value_phone].", "call [value_phone] ."),
        ("it\u2019s  there\t\n ok", "it 's there ok"),
    ],
)
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@settings(deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab1 2:.,'?![]_-nt;ampAPM\u2019")), max_size=30))
def test_normalize_text_is_idempotent(text):
    once = normalize_text(text)
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("slot", "raw", "expected"),
    [
        ("area", "not mentioned", None),
        ("area", "", None),
        ("area", "none", None),
        ("food", "don't care", "dontcare"),
        ("food", "do n't care", "dontcare"),
        ("food", "dont care", "dontcare"),
        ("type", "Hotel|Guesthouse", "hotel"),
        ("parking", "free", "yes"),
        ("name", "  Pizza  Hut ", "pizza hut"),
        ("leave", "5:45pm", "17:45"),
        ("arrive", "after 15:45", "15:45"),
        ("time", "1715", "17:15"),
        ("leave", "after lunch", "after lunch"),
    ],
)
def test_normalize_value(slot, raw, expected):
    assert normalize_value(slot, raw) == expected


@pytest.mark.parametrize(("raw", "expected"), [("9", "09:00"), ("8pm", "20:00"), ("12am", "00:00"), ("9:30", "09:30"), ("friday", None), ("25:00", None)])
def test_normalize_time(raw, expected):
    assert normalize_time(raw) == expected


def test_slot_names():
    assert [state_slot_name(s) for s in ("leaveAt", "arriveBy", "pricerange")] == ["leave", "arrive", "pricerange"]
    assert [requestable_slot_name(s) for s in ("car type", "entrance fee", "trainID", "duration", "phone")] == [
        "car", "price", "id", "time", "phone",
    ]  # fmt: skip
    assert all(slot == state_slot_name(slot) for slots in INFORMABLE_SLOTS.values() for slot in slots)


def test_delex_replaces_spans_and_keeps_the_rest():
    text = "The Gonville Hotel is in the centre ."
    rows = [["Hotel-Inform", "Type", "hotel", 2, 2], ["Hotel-Inform", "Name", "the Gonville Hotel", 0, 2], ["Hotel-Inform", "Area", "centre", 6, 6]]
    assert delexicalize(text, rows) == "[value_name] is in the [value_area] ."


def test_delex_ties_go_to_the_first_annotation():
    rows = [["Taxi-Inform", "Arrive", "12:30", 1, 1], ["Restaurant-Inform", "Time", "12:30", 1, 1]]
    assert delexicalize("at 12:30 .", rows) == "at [value_arrive] ."


def test_delex_leaves_dontcare_opening_hours_and_empty_spans_lexical():
    rows = [["Hotel-Inform", "Area", "dontcare", 0, 2], ["Attraction-Inform", "Open", "daily", 4, 4], ["Attraction-Inform", "Type", "boat", 4, 3]]
    assert delexicalize("does n't matter , daily", rows) == "does n't matter , daily"


def test_delex_maps_abbreviated_slots_and_merges_address_parts():
    text = "at Unit g6 , Clifton road , CB17DY , fee 5 pounds , ticket 10.10 GBP"
    rows = [
        ["Attraction-Inform", "Addr", "Unit g6", 1, 2],
        ["Attraction-Inform", "Addr", "Clifton road", 4, 5],
        ["Attraction-Inform", "Post", "CB17DY", 7, 7],
        ["Attraction-Inform", "Fee", "5 pounds", 10, 11],
        ["Train-Inform", "Ticket", "10.10 GBP", 14, 15],
    ]
    assert delexicalize(text, rows) == "at [value_address] , [value_postcode] , fee [value_price] , ticket [value_price]"


def test_delex_catches_unannotated_unambiguous_values():
    text = "TR1234 , call -01223332320 , postcode cb21ab , reference 8OVEXJLB , 15 minutes"
    expected = "[value_id] , call -[value_phone] , postcode [value_postcode] , reference [value_reference] , 15 minutes"
    assert delexicalize(text, []) == expected
    assert normalize_text(expected).startswith("[value_id] , call - [value_phone] ,")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["Hotel-Inform", "Area", "north", 3, 9], "covers tokens 3..9 but the text has 4 tokens"),
        (["Hotel-Inform", "Area", "north", -1, 0], "covers tokens -1..0"),
        (["Hotel-Inform", "Area", "north", "1", 1], "start and end must be integers"),
        (["Hotel-Inform", "Colour", "red", 1, 1], "unknown slot 'Colour'"),
        (["Hotel-Inform", "Area", 1], "expected [act, slot, value, start, end]"),
    ],
)
def test_delex_rejects_bad_spans(row, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        delexicalize("it is north .", [row])
