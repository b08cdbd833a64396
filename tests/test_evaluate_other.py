"""In-Car and state-tracking evaluators, and the venue matching of the standard one (legacy: test_evaluate_legacy.py)."""

from __future__ import annotations

import pytest
from conftest import require_data

from todrl.data.incar import load_incar
from todrl.data.records import Dialogue, Turn
from todrl.evaluate.dst import DstEvaluator, multiwoz_spelling
from todrl.evaluate.incar import InCarEvaluator
from todrl.evaluate.predictions import PredictedTurn
from todrl.evaluate.venues import partial_ratio


@pytest.mark.parametrize(
    "first, second, ratio",  # values of the reference implementation (fuzzywuzzy)
    [("pizza hut city centre", "pizza hut", 100), ("caffe uno", "cafe uno", 88), ("kings lynn", "king's lynn", 90),
     ("the cambridge belfry", "cambridge belfry", 100), ("stansted airport", "stevenage", 44), ("abc", "", 0)],
)  # fmt: skip
def test_partial_ratio(first: str, second: str, ratio: int) -> None:
    assert partial_ratio(first, second) == ratio == partial_ratio(second, first)


def turn(state: dict, services: str = "", system: str = "ok", booked: tuple = ()) -> Turn:
    return Turn(user="u", system=system, system_delex=system, belief_state=state, dialogue_act={},
                active_domains=[services] if services else [], booked_domains=list(booked))  # fmt: skip


def test_dst_joint_and_slot_accuracy_and_volatility() -> None:
    dialogues = [
        Dialogue("d1", {}, [turn({"hotel": {"area": "north"}}), turn({"hotel": {"area": "north", "stars": "4"}})],
                 services=["hotel"]),
        Dialogue("d2", {}, [turn({"train": {"leave": "17:00", "day": "monday"}})], services=["train"]),
    ]  # fmt: skip
    evaluator = DstEvaluator(dialogues, multiwoz_spelling)
    gold = {d.id: [PredictedTurn("", t.belief_state) for t in d.turns] for d in dialogues}
    perfect = evaluator.evaluate(gold)
    assert (perfect.joint_goal_accuracy, perfect.slot_accuracy, perfect.volatility) == (100.0, 100.0, 0.0)
    guesses = {
        "d1": [PredictedTurn("", {"hotel": {"area": "North"}}), PredictedTurn("", {"hotel": {"area": "north", "stars": "3"}})],
        "d2": [PredictedTurn("", {"train": {"leaveAt": "5pm", "day": "monday"}})],
    }
    result = evaluator.evaluate(guesses)
    assert result.joint_goal_accuracy == pytest.approx(200 / 3)  # spellings are normalized; the wrong star count is not
    assert result.per_service == {"hotel": 50.0, "train": 100.0} and result.volatility == pytest.approx(25.0)
    # d1's second turn: 1 wrong of the 2 hotel slots in the inventory
    assert result.slot_accuracy == pytest.approx(100 * (1 + 0.5 + 1) / 3)


def test_dst_accepts_any_listed_spelling() -> None:
    gold_turn = turn({"restaurants_1": {"time": "11:30"}})
    gold_turn.gold_values = {"restaurants_1": {"time": ["11:30", "half past 11"]}}  # what the SGD reader provides
    evaluator = DstEvaluator([Dialogue("s", {}, [gold_turn], services=["restaurants_1"])])
    result = evaluator.evaluate({"s": [PredictedTurn("", {"restaurants_1": {"time": "Half past 11"}})]})
    assert result.joint_goal_accuracy == 100.0


def test_incar_gold_predictions_score_full_match_and_bleu() -> None:
    dialogues = load_incar(require_data("kvret"), "test")
    evaluator = InCarEvaluator(dialogues)
    gold = {d.id: [PredictedTurn(t.system_delex, t.belief_state) for t in d.turns] for d in dialogues}
    result = evaluator.evaluate(gold)
    assert result.match == 100.0 and result.bleu == pytest.approx(100.0)
    assert 50 < result.success_f1 <= 100  # requests the gold replies do not fill cost recall
    blank = {d: [PredictedTurn("sorry .", {}) for _ in turns] for d, turns in gold.items()}
    worse = evaluator.evaluate(blank)
    assert worse.success_f1 == 0.0 and worse.match < result.match and worse.combined < result.combined
    assert evaluator.evaluate({d: [PredictedTurn(t.response) for t in ts] for d, ts in gold.items()}).match is None
