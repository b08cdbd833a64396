"""Property tests of the span reader and the rewards on random and adversarial text."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from rewards import Gold, RewardConfig, build_target, parse_target, token_rewards, tod_reward
from rewards.core import REQUEST_SPANS, REWARDS
from rewards.score import sequence_rewards
from rewards.spans import DEFAULT_SLOTS, SPAN_TOKENS, SpanParser, Target

SLOT_NAMES = frozenset().union(*map(frozenset, DEFAULT_SLOTS.values()))
VALUE_WORDS = [
    "cheap", "north", "modern", "british", "17:15", "4", "yes", "dontcare", "the", "gonville",
    "hotel", "guest", "house", "monday", "cambridge", "kings", "b's", "3", "miles", "gas", "station",
]  # fmt: skip
REQUESTABLE = ["address", "phone", "postcode", "reference", "id", "price", "choice", "name", "area", "fee", "open"]
ACTS = ["inform", "request", "recommend", "select", "nooffer", "offerbook", "book", "nobook", "reqmore", "bye"]
ACT_DOMAINS = ["restaurant", "hotel", "attraction", "train", "taxi", "general", "booking", "navigate"]
RESPONSE_WORDS = ["their", "phone", "is", ".", "?", "i", "booked", "it", "for", "you", "area", "<", "[", "]"]
FRAGMENTS = [
    *SPAN_TOKENS, "<sos", "_b>", "<eos_", "<", ">", "[", "]", "[value_", "phone]", "[value_phone]",
    "[value_reference]", "[restaurant]", "[hotel]", "[taxi]", "[general]", "[inform]", "[request]", "[navigate]",
    "food", "area", "name", "leave", "poi_type", "parking", "modern", "british", "north", "17:15",
    " ", " ", " ", "  ", "\n", "\t", "\u2581", "\u0120", "é", "\x00", ".", "sos_b>",
]  # fmt: skip
assert not SLOT_NAMES & set(VALUE_WORDS)

adversarial_text = st.lists(st.sampled_from(FRAGMENTS), max_size=40).map("".join)
any_text = st.one_of(st.text(max_size=80), adversarial_text)
configs = st.fixed_dictionaries(
    {"type": st.sampled_from([r for r in REWARDS if r != "none"]), "alpha": st.floats(0, 5), "beta": st.floats(0, 5), "symmetric": st.booleans(),
     "request_spans": st.sampled_from(REQUEST_SPANS), "request_weight": st.floats(0, 10)}
)


@st.composite
def belief_states(draw):
    with_slots = [domain for domain, slots in DEFAULT_SLOTS.items() if slots]
    domains = draw(st.lists(st.sampled_from(with_slots), unique=True, max_size=3))
    state = {}
    for domain in domains:
        slots = draw(st.lists(st.sampled_from(DEFAULT_SLOTS[domain]), unique=True, min_size=1, max_size=4))
        state[domain] = {}
        for slot in slots:
            # A value may begin with a slot name: the reader takes it as the value's first word.
            lead = draw(st.lists(st.sampled_from(DEFAULT_SLOTS[domain]), max_size=1))
            words = draw(st.lists(st.sampled_from(VALUE_WORDS), min_size=1, max_size=3))
            state[domain][slot] = " ".join(lead + words)
    return state


act_slots = st.lists(st.sampled_from(REQUESTABLE), max_size=3)


@st.composite
def dialogue_acts(draw):
    domains = draw(st.lists(st.sampled_from(ACT_DOMAINS), unique=True, max_size=3))
    return {
        domain: draw(st.dictionaries(st.sampled_from(ACTS), act_slots, min_size=1))
        for domain in domains
    }


responses = st.lists(
    st.one_of(st.sampled_from(RESPONSE_WORDS), st.sampled_from(REQUESTABLE).map("[value_{}]".format)), max_size=12
).map(" ".join)


@st.composite
def gold_turns(draw, answered_in_both=False):
    """A gold turn and its gold target: every requested or offered slot given (by the act or the response, or by
    both when `answered_in_both`), nothing else."""
    state = draw(belief_states())
    requested = draw(st.lists(st.sampled_from(REQUESTABLE), unique=True, max_size=4))
    in_act = [slot for slot in requested if answered_in_both or draw(st.booleans())]
    in_response = requested if answered_in_both else [slot for slot in requested if slot not in in_act]
    act = {"general": {"reqmore": []}}
    if in_act:
        act = {"hotel": {"inform": in_act, "request": ["area"]}, **act}
    response = " ".join(["here", *(f"[value_{slot}]" for slot in in_response), "."])
    with_act = draw(st.booleans()) or bool(in_act)
    offered = draw(st.lists(st.sampled_from(requested), unique=True)) if requested else []
    gold = Gold(state, {"hotel": [slot for slot in requested if slot not in offered]}, offered=offered)
    return gold, build_target(state, act, response, with_act), state


gold_texts = gold_turns().map(lambda turn: turn[1])


def word_tokens(text: str) -> list[str]:
    """Tokens as a SentencePiece model decodes them: each word carries the space before it."""
    words = text.split(" ")
    return [words[0], *(f"\u2581{word}" for word in words[1:])]


def split(text: str, cuts: list[int]) -> list[str]:
    cuts = sorted(set(cuts))
    return [text[start:end] for start, end in zip([0, *cuts], [*cuts, len(text)])]


@settings(deadline=None)
@given(text=adversarial_text, data=st.data())
def test_reading_in_pieces_equals_reading_whole(text, data):
    parser = SpanParser()
    for piece in split(text, data.draw(st.lists(st.integers(0, len(text)), max_size=12))):
        parser.feed(piece)
    assert parser.close() == parse_target(text)


@settings(deadline=None)
@given(state=belief_states(), act=dialogue_acts(), response=responses, with_act=st.booleans())
def test_round_trip_of_generated_turns(state, act, response, with_act):
    expected = Target(state, act if with_act else {}, response)
    assert parse_target(build_target(state, act, response, with_act)) == expected


@settings(deadline=None)
@given(text=any_text, turn=gold_turns(), config=configs, data=st.data())
def test_never_raises_and_every_reward_lies_in_the_unit_interval(text, turn, config, data):
    gold, _, _ = turn
    parse_target(text)
    tokens = split(text, data.draw(st.lists(st.integers(0, len(text)), max_size=10)))
    for reward in token_rewards(tokens, gold, "cumulative", config=RewardConfig(**config)):
        assert 0.0 <= reward <= 1.0
    assert 0.0 <= sequence_rewards([text], [gold], RewardConfig(**config))[0] <= 1.0


@settings(deadline=None)
@given(config=configs, data=st.data())
def test_the_gold_target_scores_one_and_an_empty_generation_zero(config, data):
    gold, target, _ = data.draw(gold_turns(answered_in_both=config["request_spans"] != "either"))
    assert sequence_rewards([target, ""], [gold, gold], RewardConfig(**config)) == [1.0, 0.0]
    assert token_rewards([], gold, "delta", config=RewardConfig(**config)) == []


@settings(deadline=None)
@given(text=st.one_of(any_text, gold_texts), turn=gold_turns(), config=configs, data=st.data())
def test_delta_rewards_sum_to_the_reward_of_the_whole_generation(text, turn, config, data):
    gold, _, _ = turn
    tokens = split(text, data.draw(st.lists(st.integers(0, len(text)), max_size=20)))
    deltas = token_rewards(tokens, gold, "delta", config=RewardConfig(**config))
    assert len(deltas) == len(tokens)
    assert math.isclose(sum(deltas), sequence_rewards([text], [gold], RewardConfig(**config))[0], abs_tol=1e-9)


@settings(deadline=None)
@given(config=configs, data=st.data())
def test_cumulative_reward_along_the_gold_target_never_decreases(config, data):
    gold, target, _ = data.draw(gold_turns(answered_in_both=config["request_spans"] != "either"))
    tokens = split(target, data.draw(st.lists(st.integers(0, len(target)), max_size=30)))
    curve = token_rewards(tokens, gold, "cumulative", config=RewardConfig(**config))
    assert all(before <= after for before, after in zip(curve, curve[1:]))
    assert curve[-1] == 1.0


@settings(deadline=None)
@given(turn=gold_turns())
def test_gold_curve_rises_once_per_pair_and_plateaus_while_a_value_is_written(turn):
    gold, target, state = turn
    tokens = word_tokens(target)
    curve = token_rewards(tokens, gold, "cumulative", config=RewardConfig(type="understanding"))
    words = [token.lstrip("\u2581") for token in tokens]
    end = words.index("<eos_b>")
    # Words that continue a value (not its first word) must leave the reward unchanged.
    continuing = set()
    position = 1
    for pairs in state.values():
        position += 1  # the domain bracket
        for value in pairs.values():
            length = len(value.split())
            continuing.update(range(position + 2, position + 1 + length))
            position += 1 + length
    assert position == end
    for index in continuing:
        assert curve[index] == curve[index - 1], (index, words[index])
    rises = [i for i in range(1, len(curve)) if curve[i] > curve[i - 1]]
    pairs = sum(len(slots) for slots in state.values())
    assert len([i for i in rises if i <= end]) == max(pairs, 1)
    assert curve[end] == 1.0
    assert tod_reward(target, gold, RewardConfig(alpha=0.5, beta=2.0)) == 1.0
