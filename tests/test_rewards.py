"""The rewards of seed 004 on hand-made generations: formulas, edge cases, token pieces, errors."""

from __future__ import annotations

import doctest
import importlib
import math
import subprocess
import sys
from pathlib import Path

import pytest

from rewards import (
    Gold,
    RewardConfig,
    RewardTracker,
    batch_token_rewards,
    generation_reward,
    token_pieces,
    token_rewards,
    tod_reward,
    understanding_reward,
)
from todrl.data.records import Turn

ROOT = Path(__file__).resolve().parents[1]
GOLD = Gold(
    {"restaurant": {"food": "modern british", "area": "centre", "pricerange": "cheap"}},
    {"restaurant": ["phone", "postcode"]},
)


def test_understanding_reward_is_equation_2():
    text = "<sos_b> [restaurant] food modern british area north pricerange cheap <eos_b>"
    for alpha in (0.0, 1.0, 3.0):
        assert understanding_reward(text, GOLD, RewardConfig(alpha=alpha)) == pytest.approx(2 / 3 * math.exp(-alpha / 3))


def test_generation_reward_is_equation_3():
    text = "<sos_a> [restaurant] [inform] phone name <eos_a> <sos_r> the phone is [value_phone] . <eos_r>"
    for beta in (0.0, 1.0, 3.0):
        assert generation_reward(text, GOLD, RewardConfig(beta=beta)) == pytest.approx(1 / 2 * math.exp(-beta / 2))


def test_tod_reward_is_equation_4():
    text = "<sos_b> [restaurant] food modern british area north <eos_b> <sos_r> at [value_postcode] . <eos_r>"
    expected = (1 * math.exp(-0.5 * 2 / 3) + 1 * math.exp(-2.0 * 1 / 2)) / (3 + 2)
    assert tod_reward(text, GOLD, RewardConfig(alpha=0.5, beta=2.0)) == pytest.approx(expected)


def test_a_value_counts_only_once_closed():
    tokens = ["<sos_b>", "▁[restaurant]", "▁food", "▁modern", "▁british", "▁area", "▁centre", "▁<eos_b>"]
    curve = token_rewards(tokens, GOLD, "cumulative", config=RewardConfig(type="understanding"))
    one = 1 / 3 * math.exp(-2 / 3)
    assert curve == pytest.approx([0, 0, 0, 0, 0, 0, one, 2 / 3 * math.exp(-1 / 3)])
    # "british" alone is a different value from the gold "modern british".
    assert understanding_reward("<sos_b> [restaurant] food british <eos_b>", GOLD) == 0.0
    # Cut off inside a value: not counted yet.
    assert understanding_reward("<sos_b> [restaurant] area centre", GOLD) == 0.0
    assert understanding_reward("<sos_b> [restaurant] area centre ", GOLD) == 0.0
    assert understanding_reward("<sos_b> [restaurant] area centre [", GOLD) == 0.0
    assert understanding_reward("<sos_b> [restaurant] area centre [hotel]", GOLD) == pytest.approx(one)


def test_the_last_value_of_a_slot_is_the_one_that_counts():
    gold = Gold({"hotel": {"area": "north"}}, {})
    assert understanding_reward("<sos_b> [hotel] area north stars 4 area south <eos_b>", gold) == 0.0
    assert understanding_reward("<sos_b> [hotel] area south stars 4 area north <eos_b>", gold) == 1.0
    assert understanding_reward("<sos_b> [hotel] area south [hotel] area north <eos_b>", gold, RewardConfig(symmetric=True)) == 1.0
    # The slot being filled cannot restart itself: its name is part of the value.
    assert understanding_reward("<sos_b> [hotel] area north area south <eos_b>", gold) == 0.0
    # Repeated pairs are one pair.
    assert understanding_reward("<sos_b> [hotel] area north [hotel] area north <eos_b>", gold, RewardConfig(symmetric=True)) == 1.0
    assert understanding_reward("<sos_b> [hotel] area North <eos_b>", Gold({"hotel": {"area": "NORTH"}}, {})) == 1.0


def test_printed_penalty_ignores_extra_pairs_and_the_symmetric_one_does_not():
    gold = Gold({"hotel": {"area": "north"}}, {"hotel": ["phone"]})
    text = "<sos_b> [hotel] area north stars 4 [taxi] leave 17:15 <eos_b> <sos_r> [value_phone] [value_address] <eos_r>"
    assert understanding_reward(text, gold) == 1.0
    assert understanding_reward(text, gold, RewardConfig(alpha=2.0, symmetric=True)) == pytest.approx(math.exp(-2.0 * 2))
    assert generation_reward(text, gold) == 1.0
    assert generation_reward(text, gold, RewardConfig(symmetric=True)) == pytest.approx(math.exp(-1))


def test_empty_gold_sets_pay_once_their_span_is_closed():
    nothing = Gold({}, {})
    assert understanding_reward("<sos_b> [hotel] area north", nothing) == 0.0
    assert understanding_reward("<sos_b> <eos_b>", nothing) == 1.0
    assert understanding_reward("<sos_b> [hotel] area north <eos_b>", nothing) == 1.0
    assert understanding_reward("<sos_b> [hotel] area north <eos_b>", nothing, RewardConfig(alpha=0.5, symmetric=True)) == (
        pytest.approx(math.exp(-0.5))
    )
    assert generation_reward("<sos_b> <eos_b> <sos_r> bye", nothing) == 0.0
    assert generation_reward("<sos_b> <eos_b> <sos_r> bye <eos_r>", nothing) == 1.0
    assert tod_reward("<sos_b> <eos_b>", nothing) == 0.5
    assert tod_reward("<sos_b> <eos_b> <sos_r> bye <eos_r>", nothing) == 1.0
    # One empty set: Eq. 4 weighs it by zero.
    only_state = Gold({"hotel": {"area": "north"}}, {})
    assert tod_reward("<sos_b> [hotel] area north <eos_b>", only_state) == 1.0


def test_requests_are_met_by_informing_acts_and_response_placeholders_only():
    gold = Gold({}, ["phone"])
    assert generation_reward("<sos_a> [hotel] [request] phone <eos_a>", gold) == 0.0
    assert generation_reward("<sos_a> [hotel] [inform] phone <eos_a>", gold) == 1.0
    assert generation_reward("<sos_a> [hotel] [inform] phone", gold) == 0.0  # "phone..." may go on
    assert generation_reward("<sos_a> [hotel] [offerbooked] phone <eos_a>", gold) == 1.0
    assert generation_reward("<sos_a> [hotel] [nooffer] phone <eos_a>", gold) == 0.0
    assert generation_reward("<sos_a> [hotel] [nooffer] phone <eos_a>", gold, RewardConfig(informing_acts={"nooffer"})) == 1.0
    assert generation_reward("<sos_b> [hotel] name [value_phone] <eos_b>", gold) == 0.0
    assert generation_reward("<sos_r> call [value_phone].", gold) == 1.0


def test_request_spans_decide_where_a_request_may_be_answered():
    gold = Gold({}, {"hotel": ["phone", "postcode"]})
    act_only = "<sos_a> [hotel] [inform] phone postcode <eos_a> <sos_r> anything else ? <eos_r>"
    both = "<sos_a> [hotel] [inform] phone postcode <eos_a> <sos_r> [value_phone] , [value_postcode] . <eos_r>"
    assert generation_reward(act_only, gold) == 1.0
    assert generation_reward(act_only, gold, RewardConfig(request_spans="response")) == 0.0
    assert generation_reward(act_only, gold, RewardConfig(request_spans="each")) == pytest.approx(0.5)
    assert generation_reward(both, gold, RewardConfig(request_spans="each")) == 1.0
    # Each span carries its own penalty: the act gives one of two slots, the response both.
    half = "<sos_a> [hotel] [inform] phone <eos_a> <sos_r> [value_phone] , [value_postcode] . <eos_r>"
    assert generation_reward(half, gold, RewardConfig(request_spans="each")) == pytest.approx((0.5 * math.exp(-0.5) + 1.0) / 2)
    # In Eq. 4 the two spans share the weight |Sgt|: Rtod stays a weighted mean of Ru and Rg.
    turn = Gold({"hotel": {"area": "north"}}, {"hotel": ["phone", "postcode"]})
    text = "<sos_b> [hotel] area north <eos_b> " + act_only
    assert tod_reward(text, turn, RewardConfig(request_spans="each")) == pytest.approx((1.0 + 2 * 0.5) / 3)
    pieces = [word + " " for word in text.split(" ")]
    assert sum(token_rewards(pieces, turn, "delta", config=RewardConfig(request_spans="each"))) == pytest.approx(2 / 3)
    # Nothing requested: each span pays its penalty alone once the response is closed.
    nothing = Gold({}, {})
    extra = "<sos_a> [hotel] [inform] phone <eos_a> <sos_r> ok . <eos_r>"
    assert generation_reward(extra, nothing, RewardConfig(request_spans="each", symmetric=True)) == pytest.approx((math.exp(-1) + 1) / 2)


def test_request_weight_counts_each_request_as_that_many_belief_pairs():
    text = "<sos_b> [restaurant] food modern british area centre pricerange cheap <eos_b> <sos_r> [value_phone] . <eos_r>"
    half = 1 * math.exp(-1 / 2)  # one of the two requests given
    assert tod_reward(text, GOLD) == pytest.approx((3 + half) / 5)
    assert tod_reward(text, GOLD, RewardConfig(request_weight=4.0)) == pytest.approx((3 + 4 * half) / (3 + 4 * 2))
    assert tod_reward(text, GOLD, RewardConfig(request_weight=0.0)) == 1.0
    pieces = [word + " " for word in text.split(" ")]
    assert sum(token_rewards(pieces, GOLD, config=RewardConfig(request_weight=4.0))) == pytest.approx(tod_reward(text, GOLD, RewardConfig(request_weight=4.0)))


def test_offered_slots_count_like_requested_ones():
    asked = Gold({}, {"restaurant": ["phone"]})
    offering = Gold({}, {"restaurant": ["phone"]}, offered=["name"])
    text = "<sos_a> [restaurant] [inform] phone <eos_a> <sos_r> [value_phone] . <eos_r>"
    named = "<sos_a> [restaurant] [recommend] name <eos_a> <sos_r> try [value_name] , [value_phone] . <eos_r>"
    assert generation_reward(text, asked) == 1.0
    assert generation_reward(text, offering) == pytest.approx(0.5 * math.exp(-0.5))
    assert generation_reward(named, offering) == 1.0
    assert generation_reward(named, offering, RewardConfig(request_spans="each")) == pytest.approx((0.5 * math.exp(-0.5) + 1.0) / 2)
    # A turn nobody asked anything in: the offer alone is Sgt, and Rtod weighs it like a request.
    state = Gold({"restaurant": {"area": "centre"}}, {}, offered=["name"])
    silent = "<sos_b> [restaurant] area centre <eos_b> <sos_r> what food would you like ? <eos_r>"
    assert tod_reward(silent, state) == pytest.approx(1 / 2)
    assert tod_reward(silent, Gold({"restaurant": {"area": "centre"}}, {})) == 1.0
    assert Gold.from_turn({"belief_state": "{}", "requested_slots": "{}", "offered_slots": '["name"]'}).expected == {"name"}


def test_tracker_gives_the_reward_of_each_prefix():
    tracker = RewardTracker(Gold({"taxi": {"leave": "17:15"}}, {}))
    assert [tracker.step(piece) for piece in ["<sos_b> [ta", "xi] leave 17", ":15", " <eos", "_b>"]] == [0, 0, 0, 0, 1]
    assert tracker.belief_state == {"taxi": {"leave": "17:15"}}


def test_token_pieces_undo_space_markers_and_read_offsets():
    assert token_pieces(["▁the", "Ġphone", "Ċ", "<0x20>", "x"]) == [" the", " phone", "\n", " ", "x"]
    assert token_pieces(("<sos_b> [taxi]", [3, 7, 7, 14])) == ["<so", "s_b>", "", " [taxi]"]
    text = "<sos_b> [taxi] leave 17:15 <eos_b>"
    gold = Gold({"taxi": {"leave": "17:15"}}, {})
    ends = [7, 14, 20, 26, len(text)]
    assert token_rewards((text, ends), gold, "cumulative", config=RewardConfig(type="understanding")) == [0, 0, 0, 0, 1]


def test_batch_matches_one_by_one():
    texts = [["<sos_b>", " [restaurant]", " area", " centre", " <eos_b>"], ["<sos_r>", " [value_phone]", " <eos_r>"]]
    golds = [GOLD, {"belief_state": "{}", "requested_slots": '{"hotel": ["phone"]}'}]
    assert batch_token_rewards(texts, golds, "delta") == [
        token_rewards(texts[0], golds[0]),
        token_rewards(texts[1], Gold({}, ["phone"])),
    ]


def test_gold_is_built_from_turn_records_dicts_and_json():
    turn = Turn("hi", "ok", "ok", {"hotel": {"area": "north", "stars": ""}}, {}, {"hotel": ["phone"], "taxi": ["car"]})
    gold = Gold.from_turn(turn)
    assert gold.pairs == {("hotel", "area"): "north"}
    assert gold.requested == frozenset({"phone", "car"})
    as_json = Gold.from_turn({"belief_state": '{"hotel": {"area": "north"}}', "requested_slots": '["phone", "car"]'})
    assert as_json.pairs == gold.pairs and as_json.requested == gold.requested


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Gold({"hotel": {"area": 3}}, {}, where="SNG01 turn 2"), r"SNG01 turn 2: .*\['hotel'\]\['area'\].*3"),
        (lambda: Gold({"hotel": "north"}, {}, where="SNG01 turn 2"), r"SNG01 turn 2: belief_state\['hotel'\]"),
        (lambda: Gold({}, "phone", where="MUL9 turn 0"), "MUL9 turn 0: requested .* string 'phone'"),
        (lambda: Gold({}, {"hotel": [1]}, where="MUL9 turn 0"), "MUL9 turn 0: requested slots .*1"),
        (lambda: Gold.from_turn({"belief_state": "{"}, where="row 4"), r"row 4: missing \['requested_slots'\]"),
        (lambda: Gold({}, {}, where="MUL9 turn 1", offered=[3]), "MUL9 turn 1: offered slots must be a list of names"),
        (lambda: Gold.from_turn({"belief_state": "{", "requested_slots": "[]"}, "row 4"), "row 4: belief_state .*JSON"),
        (lambda: token_rewards("<sos_b>", GOLD), "not a bare string"),
        (lambda: token_rewards(["<sos_b>", 3], GOLD), "token 1: expected a string"),
        (lambda: token_rewards(("abc", [2, 1]), GOLD), r"token 1: end offset 1 .*\[2, 3\]"),
        (lambda: token_rewards(("abc", [5]), GOLD), r"token 0: end offset 5"),
        (lambda: token_rewards(["a"], GOLD, mode="sum"), "mode must be one of"),
        (lambda: RewardConfig(type="bleu"), "reward must be one of"),
        (lambda: RewardConfig(alpha=-1.0), "alpha must be a finite number >= 0"),
        (lambda: RewardConfig(beta=float("nan")), "beta must be"),
        (lambda: RewardConfig(request_spans="act"), "request_spans must be one of"),
        (lambda: RewardConfig(request_weight=-2.0), "request_weight must be a finite number >= 0"),
        (lambda: batch_token_rewards([["a"]], []), "1 generations but 0 gold turns"),
    ],
)
def test_bad_input_gets_a_clear_error(build, message):
    with pytest.raises((ValueError, TypeError), match=message):
        build()


def test_importing_rewards_pulls_in_neither_torch_nor_transformers():
    code = "import rewards, sys; assert not {'torch', 'transformers', 'trl', 'numpy'} & set(sys.modules), sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize("module", ["rewards.core", "rewards.score", "rewards.trl"])
def test_docstring_examples_hold(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0
