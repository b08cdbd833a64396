"""Evaluators read what a model generated: any slot name, value or response text must score, never raise."""

from __future__ import annotations

import pytest
from conftest import require_data
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.evaluate import DstEvaluator, InCarEvaluator, LegacyEvaluator, StandardEvaluator
from todrl.evaluate.dst import multiwoz_spelling, text_spelling
from todrl.evaluate.predictions import PredictedTurn

JUNK = ["19:15arrive19:15", "", "?", "dontcare", "24:60", "9:5", "[value_time]", "the the the", "cheap moderate", "0"]
text = st.one_of(st.sampled_from(JUNK), st.text(alphabet="abc :[]_?0123456789", max_size=20))
state = st.dictionaries(
    st.sampled_from(["train", "train", "restaurant", "hotel", "taxi", "attraction", "hospital", "police", "navigate", "weird"]),
    st.dictionaries(st.sampled_from(["name", "leave", "arrive", "food", "stars", "day", "people", "area", "poi_type", "zz"]), text, max_size=4),
    max_size=3,
)
turn = st.builds(PredictedTurn, response=st.one_of(text, st.sampled_from(["[value_name] at [value_phone] .", "[value_id] leaves"])), state=state)


@pytest.fixture(scope="module")
def sample_test():
    dialogues = load_multiwoz(SAMPLE_PATH, "test")
    return dialogues, MultiWozDB(SAMPLE_PATH / "db")


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_multiwoz_evaluators_score_any_generated_state(sample_test, data):
    dialogues, db = sample_test
    predictions = {d.id: [data.draw(turn) for _ in d.turns] for d in dialogues}
    standard = StandardEvaluator(dialogues, db).evaluate(predictions, "<fuzz>")
    assert 0 <= standard.inform["total"] <= 100 and 0 <= standard.bleu <= 100
    for db_state in ("gold", "generated"):
        legacy = LegacyEvaluator(dialogues, db).evaluate(predictions, "<fuzz>", db_state=db_state)
        assert 0 <= legacy.success <= 100
    assert 0 <= DstEvaluator(dialogues, multiwoz_spelling).evaluate(predictions, "<fuzz>").joint_goal_accuracy <= 100


@pytest.fixture(scope="module")
def incar_dev():
    from todrl.data.incar import load_incar

    return load_incar(require_data("kvret"), "dev")[:4]


@pytest.mark.slow
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_incar_evaluator_scores_any_generated_state(incar_dev, data):
    predictions = {d.id: [data.draw(turn) for _ in d.turns] for d in incar_dev}
    result = InCarEvaluator(incar_dev).evaluate(predictions, "<fuzz>")
    assert 0 <= result.match <= 100 and 0 <= result.success_f1 <= 100
    assert 0 <= DstEvaluator(incar_dev, text_spelling).evaluate(predictions, "<fuzz>").joint_goal_accuracy <= 100


@pytest.mark.parametrize("value", JUNK)
def test_venue_search_takes_any_generated_time(sample_test, value):
    from todrl.evaluate.venues import VenueMatcher

    _, db = sample_test
    search = VenueMatcher(db)
    monday = search("train", {"day": "monday"})
    for slot in ("leave", "arrive"):
        assert search("train", {slot: value, "day": "monday"}) <= monday  # a time can only narrow the day's trains
