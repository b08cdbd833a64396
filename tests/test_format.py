from rewards.spans import parse_target

from todrl.data.records import Dialogue, Turn
from todrl.format import build_examples, clean_generation, format_tokens


def _dialogue(with_act: bool = True) -> Dialogue:
    turns = [
        Turn(
            user="i want british food in the centre .",
            system="the oak bistro is nice .",
            system_delex="[value_name] is nice .",
            belief_state={"restaurant": {"food": "british", "area": "centre"}},
            dialogue_act={"restaurant": {"recommend": ["name"]}} if with_act else {},
        ),
        Turn(
            user="what is their phone number ?",
            system="it is 01223 .",
            system_delex="it is [value_phone] .",
            belief_state={"restaurant": {"food": "british", "area": "centre"}},
            dialogue_act={"restaurant": {"inform": ["phone"]}, "general": {"reqmore": []}} if with_act else {},
            requested_slots={"restaurant": ["phone"]},
        ),
    ]
    return Dialogue(id="d1", goal={}, turns=turns)


def test_examples_follow_the_seed_format():
    first, second = build_examples([_dialogue()])
    assert first.target == (
        "<sos_b> [restaurant] food british area centre <eos_b> <sos_a> [restaurant] [recommend] name <eos_a> "
        "<sos_r> [value_name] is nice . <eos_r>"
    )
    prefix = "translate dialogue to belief state, dialogue action, and system response"
    assert second.source == (
        f"{prefix} : i want british food in the centre . : [restaurant] food british area centre : "
        "[restaurant] [recommend] name : [value_name] is nice . : what is their phone number ?"
    )
    assert second.requested == {"restaurant": ["phone"]}


def test_corpora_without_acts_get_two_spans_and_dst_gets_one():
    (first, second) = build_examples([_dialogue(with_act=False)])
    assert "<sos_a>" not in first.target and first.target.endswith("<sos_r> [value_name] is nice . <eos_r>")
    assert second.source.count(" : ") == 4
    dst = build_examples([_dialogue()], task="dst")[0]
    assert dst.target == "<sos_b> [restaurant] food british area centre <eos_b>"


def test_round_trip_through_the_reward_parser():
    dialogue = _dialogue()
    for turn, example in zip(dialogue.turns, build_examples([dialogue])):
        parsed = parse_target(example.target)
        assert (parsed.belief_state, parsed.dialogue_act, parsed.response) == (turn.belief_state, turn.dialogue_act, turn.system_delex)


def test_format_tokens_and_cleaning():
    examples = build_examples([_dialogue()])
    tokens = format_tokens(e.target for e in examples)
    assert tokens[:6] == ["<sos_b>", "<eos_b>", "<sos_a>", "<eos_a>", "<sos_r>", "<eos_r>"]
    assert {"[restaurant]", "[value_phone]", "[reqmore]"} <= set(tokens)
    assert clean_generation("<sos_b>[restaurant] food british<eos_b>  <sos_r>is[value_phone] .<eos_r>") == (
        "<sos_b> [restaurant] food british <eos_b> <sos_r> is [value_phone] . <eos_r>"
    )
