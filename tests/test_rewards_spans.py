"""The target grammar: writing it, reading it back, reading garbage and pieces."""

from __future__ import annotations

import random

from rewards import Gold, generation_reward, token_rewards, tod_reward
from rewards.lexer import WORD, units
from rewards.spans import (
    EOS_B,
    EOS_R,
    MULTIWOZ_SLOTS,
    NO_DOMAIN,
    SOS_B,
    SOS_R,
    SPAN_TOKENS,
    SpanParser,
    Target,
    Vocabulary,
    build_target,
    format_belief_state,
    format_dialogue_act,
    parse_belief_state,
    parse_dialogue_act,
    parse_target,
    response_slots,
)

STATE = {"restaurant": {"food": "modern british", "area": "centre"}, "hotel": {"stars": "4"}}
ACT = {"restaurant": {"inform": ["phone", "name"], "request": ["people"]}, "general": {"reqmore": []}}
RESPONSE = "their phone is [value_phone] ."
TARGET = (
    "<sos_b> [restaurant] food modern british area centre [hotel] stars 4 <eos_b> "
    "<sos_a> [restaurant] [inform] phone name [request] people [general] [reqmore] <eos_a> "
    "<sos_r> their phone is [value_phone] . <eos_r>"
)


def test_span_tokens_are_the_six_markers_in_order():
    assert SPAN_TOKENS == ("<sos_b>", "<eos_b>", "<sos_a>", "<eos_a>", "<sos_r>", "<eos_r>")


def test_build_target_writes_the_documented_format():
    assert build_target(STATE, ACT, RESPONSE) == TARGET
    assert build_target(STATE, ACT, RESPONSE, with_act=False) == (
        "<sos_b> [restaurant] food modern british area centre [hotel] stars 4 <eos_b> "
        "<sos_r> their phone is [value_phone] . <eos_r>"
    )
    assert build_target({}, {}, "hello") == "<sos_b> <eos_b> <sos_a> <eos_a> <sos_r> hello <eos_r>"


def test_parse_target_reads_the_documented_format():
    assert parse_target(TARGET) == Target(STATE, ACT, RESPONSE)


def test_formatting_drops_what_the_text_cannot_hold():
    assert format_belief_state({"hotel": {}, "taxi": {"leave": " ", "arrive": "17:15"}}) == "[taxi] arrive 17:15"
    assert format_dialogue_act({"hotel": {}, "general": {"bye": []}}) == "[general] [bye]"


def test_domain_vocabulary_keeps_slot_names_inside_values_of_other_domains():
    state = parse_belief_state("[navigate] poi_type parking garage distance 3 miles [hotel] parking yes")
    assert state == {"navigate": {"poi_type": "parking garage", "distance": "3 miles"}, "hotel": {"parking": "yes"}}


def test_a_slot_name_right_after_a_slot_is_a_value():
    assert parse_belief_state("[restaurant] name food court area north") == {
        "restaurant": {"name": "food court", "area": "north"}
    }


def test_a_value_may_repeat_the_name_of_its_own_slot():
    assert parse_belief_state("[hospital] department emergency department [schedule] room conference room 100") == {
        "hospital": {"department": "emergency department"},
        "schedule": {"room": "conference room 100"},
    }


def test_unknown_domain_uses_the_union_of_slots_and_callers_can_pass_their_own():
    assert parse_belief_state("[flights] destination paris day monday") == {
        "flights": {"destination": "paris", "day": "monday"}
    }
    assert parse_belief_state("[flights] to paris seat 4a", {"flights": ["to", "seat"]}) == {
        "flights": {"to": "paris", "seat": "4a"}
    }


def test_dialogue_act_brackets_are_domains_when_known_and_acts_otherwise():
    assert parse_dialogue_act("[hotel] [inform] area [nooffer] [booking] [book] reference [general] [bye]") == {
        "hotel": {"inform": ["area"], "nooffer": []},
        "booking": {"book": ["reference"]},
        "general": {"bye": []},
    }
    assert parse_dialogue_act("[mystery] [tell] a b") == {"mystery": {"tell": ["a", "b"]}}
    sgd = "[restaurants_1] [inform] city [hotels_2] [offer] rating"
    assert parse_dialogue_act(sgd) == {"restaurants_1": {"inform": ["city"], "hotels_2": [], "offer": ["rating"]}}
    assert parse_dialogue_act(sgd, Vocabulary(domains={"restaurants_1", "hotels_2"})) == {
        "restaurants_1": {"inform": ["city"]},
        "hotels_2": {"offer": ["rating"]},
    }


def test_a_known_act_is_an_act_even_before_any_domain_bracket():
    text = "<sos_a> [inform] phone postcode [general] [reqmore] <eos_a>"
    act = parse_target(text).dialogue_act
    assert act == {NO_DOMAIN: {"inform": ["phone", "postcode"]}, "general": {"reqmore": []}}
    assert format_dialogue_act(act) == "[inform] phone postcode [general] [reqmore]"
    # The informed slots answer the request (Rg), as they do under a domain bracket.
    assert generation_reward(text + " <sos_r> <eos_r>", Gold({}, ["phone", "postcode"])) == 1.0


def test_response_slots_reads_placeholders_even_when_glued_to_punctuation():
    assert response_slots("call [value_phone]. or [value_address],[value_phone] [phone] [value_]") == {
        "phone",
        "address",
    }


def test_partial_and_garbled_targets_keep_what_is_well_formed():
    assert parse_target("<sos_b> [taxi] leave 17:15 arrive").belief_state == {"taxi": {"leave": "17:15"}}
    assert parse_target("<sos_b> [taxi] leave 17:15 arr").belief_state == {"taxi": {"leave": "17:15 arr"}}
    assert parse_target("food british <eos_b> <sos_r> hi").belief_state == {}
    assert parse_target("<sos_b> [taxi] leave 17:15<sos_r> ok [value_phone]<eos_r> trailing") == Target(
        {"taxi": {"leave": "17:15"}}, {}, "ok [value_phone]"
    )
    assert parse_target("<sos_b> [taxi] leave <eos_b>") == Target()
    assert parse_target("") == Target()


def test_end_of_text_closes_an_open_value_for_parsing():
    assert parse_target(f"{SOS_B} [hotel] area north").belief_state == {"hotel": {"area": "north"}}
    assert parse_target(f"{SOS_B} [hotel] area north {EOS_B}").belief_state == {"hotel": {"area": "north"}}


def test_lexer_units_cover_markers_brackets_and_lone_characters():
    assert units("<<s<") == [(WORD, "<"), (WORD, "<"), (WORD, "s"), (WORD, "<")]
    assert [text for kind, text in units("a<eos_b>[x]y < [ b<sos") if kind != "space"] == [
        "a",
        "<eos_b>",
        "[x]",
        "y",
        "<",
        "[",
        "b",
        "<",
        "sos",
    ]


def test_hostile_generations_are_read_in_linear_time():
    # No timing is asserted: this takes about 0.5 s with the linear lexer, and the quadratic one took 5 s on
    # the 400k "<" (each lone "<" copied the rest of the text) and 7 s on the 20k pieces of one open bracket
    # (each piece re-read the bracket), so a regression shows as a test that crawls.
    lone = "<" * 400_000
    gold = Gold({}, {"hotel": ["phone"]})
    assert tod_reward(f"{SOS_R} {lone} {EOS_R}", gold) == tod_reward(f"{SOS_R} < {EOS_R}", gold)
    pieces = [f"{SOS_R} [value_", *["a"] * 20_000, f"] [value_phone] {EOS_R}"]
    assert sum(token_rewards(pieces, gold)) == tod_reward("".join(pieces), gold) == 1.0


def test_round_trip_survives_any_split_of_a_real_looking_target():
    rng = random.Random(0)
    for _ in range(200):
        cuts = sorted(rng.sample(range(len(TARGET)), 6))
        parser = SpanParser()
        for start, end in zip([0, *cuts], [*cuts, len(TARGET)]):
            parser.feed(TARGET[start:end])
        assert parser.close() == Target(STATE, ACT, RESPONSE)


def test_multiwoz_vocabulary_matches_the_shared_contract():
    assert MULTIWOZ_SLOTS["police"] == ()
    assert set(MULTIWOZ_SLOTS["bus"]) == set(MULTIWOZ_SLOTS["taxi"]) | {"day"}
