"""The span grammar and the rewards on every turn of the shipped MultiWOZ val and In-Car dev sets."""

from __future__ import annotations

import math

import pytest
from conftest import require_data

from rewards import INFORMING_ACTS, Gold, RewardConfig, build_target, parse_target, response_slots, token_rewards, tod_reward
from rewards.spans import DEFAULT_SLOTS

pytestmark = pytest.mark.slow  # every turn of every corpus


@pytest.fixture(scope="module")
def corpora():
    from todrl.data.incar import load_incar
    from todrl.data.multiwoz import load_multiwoz

    multiwoz = load_multiwoz(require_data("multiwoz21"), "val")
    incar = load_incar(require_data("kvret"), "dev")
    return [(dialogue, turn, True) for dialogue in multiwoz for turn in dialogue.turns] + [
        (dialogue, turn, False) for dialogue in incar for turn in dialogue.turns
    ]


def ambiguous(belief_state) -> bool:
    """A value that holds, after its first word, the name of another slot of its domain."""
    return any(
        word in DEFAULT_SLOTS.get(domain, ()) and word != slot
        for domain, pairs in belief_state.items()
        for slot, value in pairs.items()
        for word in value.split()[1:]
    )


def test_every_unambiguous_turn_round_trips(corpora):
    unclear = 0
    for dialogue, turn, with_act in corpora:
        target = build_target(turn.belief_state, turn.dialogue_act, turn.system_delex, with_act)
        if ambiguous(turn.belief_state):
            unclear += 1
            continue
        parsed = parse_target(target)
        where = f"{dialogue.id} turn {dialogue.turns.index(turn)}"
        assert parsed.belief_state == {d: s for d, s in turn.belief_state.items() if s}, where
        assert parsed.dialogue_act == ({d: a for d, a in turn.dialogue_act.items() if a} if with_act else {}), where
        assert parsed.response == " ".join(turn.system_delex.split()), where
    assert len(corpora) > 8000 and unclear / len(corpora) < 0.002


def test_gold_target_scores_one_exactly_when_it_answers_every_request(corpora):
    for dialogue, turn, with_act in corpora:
        if ambiguous(turn.belief_state):
            continue
        target = build_target(turn.belief_state, turn.dialogue_act, turn.system_delex, with_act)
        answered = response_slots(turn.system_delex) | {
            slot for acts in turn.dialogue_act.values() for act, slots in acts.items() if act in INFORMING_ACTS
            for slot in slots
        }  # fmt: skip
        requested = {slot for slots in turn.requested_slots.values() for slot in slots}
        reward = tod_reward(target, Gold.from_turn(turn))
        assert (reward == 1.0) == (requested <= answered), (dialogue.id, target, requested)
        assert 0.0 <= reward <= 1.0


def test_delta_rewards_of_gold_targets_sum_to_their_reward(corpora):
    for dialogue, turn, with_act in corpora[::40]:
        target = build_target(turn.belief_state, turn.dialogue_act, turn.system_delex, with_act)
        words = target.split(" ")
        tokens = [words[0], *(f"\u2581{word}" for word in words[1:])]
        deltas = token_rewards(tokens, turn, "delta", config=RewardConfig(symmetric=True))
        assert math.isclose(sum(deltas), tod_reward(target, turn, RewardConfig(symmetric=True)), abs_tol=1e-9)
