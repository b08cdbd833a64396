"""MultiWOZ state tracking: the standard evaluator's definition (mwzeval ``get_dst``), the exact one, and the
reader fixes both rely on.

Line numbers refer to Tomiinek/MultiWOZ_Evaluation at 7f19ee0: ``mwzeval/metrics.py`` (``get_dst``: threshold
95 at 258, ``is_matching`` 268-276, ``compare`` 278-292, precision/recall/F1/JGA 317-320), ``mwzeval/utils.py``
(``parse_state``: gold "dontcare" skipped 138-139), ``mwzeval/normalization.py`` (slot names 25-27, value
dispatch 244-255: only names, types, foods, times and parking/internet values change).  Partial ratios are
fuzzywuzzy 0.18's ``fuzz.partial_ratio`` with python-Levenshtein, which mwzeval's requirements install.
"""

from __future__ import annotations

import pytest
from conftest import require_data

from todrl.data.multiwoz import load_multiwoz
from todrl.data.normalize import normalize_time, normalize_value, state_slot_name
from todrl.data.records import Dialogue, Turn
from todrl.evaluate.cli import summary
from todrl.evaluate.dst import MultiWozDstEvaluator, standard_turn
from todrl.evaluate.fuzzy import partial_ratio
from todrl.evaluate.normalization import canonical_slot
from todrl.evaluate.predictions import PredictedTurn, PredictionError
from todrl.evaluate.published import load_published_predictions


@pytest.mark.parametrize(
    "first, second, ratio",
    [
        ("the cambridge belfry", "cambridge belfry", 100),  # the shorter string is a window of the longer
        ("centre", "center", 83),  # one window of 6: Indel ratio 10/12
        ("ian hong house", "lan hong house", 93),  # equal lengths, one window: 26/28 (rapidfuzz's own: 96.3)
        ("'s bed and breakfast", "rosas bed and breakfast", 95),  # 39/41 = 95.1 rounds to 95 (rapidfuzz: 97.4)
        ("Centre", "centre", 83),  # no lower-casing in partial_ratio
        ("", "", 100),  # utils.check_for_equivalence runs before check_empty_string
        ("north", "", 0),
    ],
)  # fmt: skip
def test_partial_ratio_is_fuzzywuzzys(first: str, second: str, ratio: int) -> None:
    assert partial_ratio(first, second) == ratio == partial_ratio(second, first)


def dialogue(*gold_states: dict) -> Dialogue:
    turns = [Turn(user="u", system="s", system_delex="s", belief_state=state, dialogue_act={}) for state in gold_states]
    return Dialogue("d", {}, turns)


def scores(gold: dict, predicted: dict) -> tuple[float, float, float, float, float]:
    result = MultiWozDstEvaluator([dialogue(gold)]).evaluate({"d": [PredictedTurn("", predicted)]})
    return result.jga, result.slot_precision, result.slot_recall, result.slot_f1, result.jga_exact


def test_values_match_above_95_partial_ratio_and_case_counts() -> None:
    gold = {"hotel": {"name": "cambridge belfry", "area": "centre"}}
    assert scores(gold, {"hotel": {"name": "the cambridge belfry", "area": "centre"}}) == (100, 100, 100, 100, 0)
    # 93 <= 95: tp 1, fp 1, fn 1 (compare, 284-291), so P = R = F1 = 50 and no joint match
    assert scores(gold, {"hotel": {"name": "cambridge belfry", "area": "center"}})[:4] == (0, 50, 50, 50)
    # "area" values are not lower-cased (normalization.py 254-255): "Centre" scores 83 and fails; exact reads it
    assert scores(gold, {"hotel": {"name": "cambridge belfry", "area": "Centre"}}) == (0, 50, 50, 50, 100)


def test_gold_dontcare_is_dropped_and_a_predicted_one_is_a_false_positive() -> None:
    gold = {"hotel": {"area": "dontcare", "stars": "4"}}
    assert scores(gold, {"hotel": {"stars": "4"}}) == (100, 100, 100, 100, 0)
    # predicting the dontcare: 2 predicted slots, 1 gold slot, 1 hit -> P 50, R 100, F1 66.7; keys differ, no JGA
    jga, precision, recall, f1, exact = scores(gold, {"hotel": {"area": "dontcare", "stars": "4"}})
    assert (jga, precision, recall, exact) == (0, 50, 100, 100) and f1 == pytest.approx(200 / 3)


def test_slot_scores_are_micro_averaged_over_turns() -> None:
    gold = [{"restaurant": {"food": "italian", "area": "centre"}}, {"restaurant": {"food": "italian", "area": "centre"}}]
    predicted = [{"restaurant": {"food": "italian", "area": "north", "pricerange": "cheap"}},  # tp 1, fp 2, fn 1
                 {"restaurant": {"food": "italian", "area": "centre"}}]  # tp 2
    result = MultiWozDstEvaluator([dialogue(*gold)]).evaluate({"d": [PredictedTurn("", s) for s in predicted]})
    assert result.jga == 50 and result.slot_precision == 60 and result.slot_recall == 75  # 3/5, 3/4
    assert result.slot_f1 == pytest.approx(2 * 0.6 * 0.75 / 1.35 * 100)
    assert standard_turn(predicted[0], gold[0]) == (False, 1, 2, 1)


def test_slot_names_and_tokenized_times_are_read_by_both_definitions() -> None:
    gold = {"train": {"leave": "15:00", "arrive": "12:30"}, "restaurant": {"day": "monday", "people": "2"}}
    augpt_style = {"train": {"leave at": "15 : 00", "arrive by": "12 :30"}, "restaurant": {"day": "monday", "people": "2"}}
    mwz22_style = {"train": {"leaveAt": "3pm", "arriveBy": "12:30"}, "restaurant": {"bookday": "monday", "bookpeople": "2"}}
    assert scores(gold, augpt_style) == scores(gold, mwz22_style) == (100, 100, 100, 100, 100)


def test_one_slot_name_map_and_time_reader() -> None:
    assert canonical_slot is state_slot_name
    assert [state_slot_name(s) for s in ("leave at", "Arrive By", "price range", "bookstay")] == ["leave", "arrive", "pricerange", "stay"]
    assert [normalize_time(t) for t in ("15 : 00", "12 :30", "after 15 : 45")] == ["15:00", "12:30", "15:45"]
    assert normalize_value("leave", "18 :00") == "18:00"


@pytest.fixture(scope="module")
def test_split() -> list[Dialogue]:
    return load_multiwoz(require_data("multiwoz21"), "test")


@pytest.mark.slow
def test_gold_states_score_100_and_dontcare_is_what_separates_the_definitions(test_split: list[Dialogue]) -> None:
    evaluator = MultiWozDstEvaluator(test_split)
    without = {d.id: [PredictedTurn("", turn_state) for turn_state in evaluator.gold[d.id]] for d in test_split}
    result = evaluator.evaluate(without)
    assert (result.jga, result.slot_precision, result.slot_recall, result.slot_f1) == (100, 100, 100, 100)
    assert result.turns == 7372
    with_dontcare = evaluator.evaluate({d.id: [PredictedTurn("", t.belief_state) for t in d.turns] for d in test_split})
    assert with_dontcare.jga_exact == 100 and with_dontcare.slot_recall == 100
    assert with_dontcare.jga == pytest.approx(100 * (7372 - 976) / 7372)  # the 976 gold turns holding a dontcare


@pytest.mark.slow
@pytest.mark.parametrize(
    "system, jga, slot_f1, jga_exact",  # jga, slot_f1: mwzeval get_dst run offline on these files and gold states
    [("augpt", 56.2534, 90.3178, 49.39), ("dots", 44.8318, 88.5721, 43.18)],
)  # fmt: skip
def test_published_files_score_as_the_reference_implementation(
    test_split: list[Dialogue], system: str, jga: float, slot_f1: float, jga_exact: float
) -> None:
    predictions = load_published_predictions(require_data("mwzeval-predictions", "predictions.zip"), system)
    result = MultiWozDstEvaluator(test_split).evaluate(predictions)
    assert result.jga == pytest.approx(jga, abs=1e-4) and result.slot_f1 == pytest.approx(slot_f1, abs=1e-4)
    assert result.jga_exact == pytest.approx(jga_exact, abs=0.01)  # 30.59 / 24.29 before "leave at" and "15 : 00" were read


def test_turn_without_state_is_an_error_naming_it() -> None:
    evaluator = MultiWozDstEvaluator([dialogue({}, {})])
    with pytest.raises(PredictionError, match="dialogue d, turn 1: no 'state' to score"):
        evaluator.evaluate({"d": [PredictedTurn("", {}), PredictedTurn("")]})


def test_cli_line_names_the_definition() -> None:
    result = MultiWozDstEvaluator([dialogue({"hotel": {"stars": "4"}})]).evaluate({"d": [PredictedTurn("", {"hotel": {"stars": "4"}})]})
    lines = summary({"dataset": "multiwoz21", "split": "test", "predictions": "p.json", "dst": result.as_dict()})
    assert "JGA 100.0  slot P/R/F1 100.0/100.0/100.0  (standard: mwzeval, fuzzy values, gold dontcare dropped)" in lines
    assert "exact JGA 100.0 (TRADE-style)  (1 turns)" in lines
