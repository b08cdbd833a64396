"""The standard MultiWOZ evaluator: its rules on hand-made dialogues, and the published numbers it must reproduce."""

from __future__ import annotations

import pytest
from conftest import require_data

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz
from todrl.data.records import Dialogue, Goal
from todrl.evaluate.multiwoz import (
    DomainGoal,
    StandardEvaluator,
    dialogue_inform_success,
    estimate_active_domains,
    evaluation_goal,
)
from todrl.evaluate.normalization import normalize_response
from todrl.evaluate.predictions import PredictedTurn
from todrl.evaluate.published import PUBLISHED, load_published_predictions

VENUES = {
    ("restaurant", (("area", "centre"),)): frozenset({"r1", "r2"}),
    ("restaurant", (("area", "centre"), ("food", "thai"))): frozenset({"r1"}),
    ("restaurant", (("area", "north"),)): frozenset({"r3"}),
}


def venues(domain: str, constraints: dict[str, str]) -> frozenset[str]:
    return VENUES.get((domain, tuple(sorted(constraints.items()))), frozenset())


def test_goal_conversion_keeps_only_checkable_requests() -> None:
    goal = evaluation_goal({
        "restaurant": Goal({"area": "centre"}, ["phone", "food", "postcode"], {"people": "2"}),
        "train": Goal({"leave": "5pm"}, ["id", "price", "phone"]),
    })  # fmt: skip
    assert goal["restaurant"].requests == {"PHONE", "POST", "REFERENCE"}
    assert goal["train"] == DomainGoal({"leave": "17:00"}, frozenset({"TRAINID"}))


def test_active_domains_follow_state_changes() -> None:
    states = [{}, {"hotel": {"area": "north"}}, {"hotel": {"area": "north"}},
              {"hotel": {"area": "north"}, "train": {"day": "monday", "leave": "09:00"}},
              {"hotel": {"area": "north", "stars": "4"}, "train": {"day": "monday", "leave": "09:00"}}]  # fmt: skip
    assert estimate_active_domains(states) == [[], ["hotel"], ["hotel"], ["train"], ["hotel"]]


def score(goal, responses, states, domains, booked=None):
    booked = booked or [frozenset()] * len(responses)
    return dialogue_inform_success(goal, [normalize_response(r) for r in responses], states, domains, booked, venues)


def test_inform_needs_every_offered_venue_to_fit_the_goal() -> None:
    goal = {"restaurant": DomainGoal({"area": "centre", "food": "thai"}, frozenset({"PHONE"}))}
    centre = {"restaurant": {"area": "centre"}}
    thai = {"restaurant": {"area": "centre", "food": "thai"}}
    inform, success = score(goal, ["try [value_name]", "phone [value_phone]"], [thai, thai], [["restaurant"]] * 2)
    assert inform == {"restaurant": True, "total": True} and success == {"restaurant": True, "total": True}
    inform, success = score(goal, ["try [value_name]", "phone [value_phone]"], [centre, centre], [["restaurant"]] * 2)
    assert not inform["total"] and success == {}  # r2 is offered too and is not thai
    inform, _ = score(goal, ["try [value_name]"], [thai], [["hotel"]])
    assert not inform["total"]  # a name in a turn about another domain offers nothing


def test_success_counts_references_only_once_booked() -> None:
    goal = {"restaurant": DomainGoal({"name": "x"}, frozenset({"REFERENCE"}))}
    turns = ["booked , ref [value_reference]"]
    _, success = score(goal, turns, [{}], [["restaurant"]])
    assert not success["total"]
    _, success = score(goal, turns, [{}], [["restaurant"]], [frozenset({"restaurant"})])
    assert success["total"]


def test_taxi_needs_no_venue_and_train_without_id_request_needs_none() -> None:
    goal = {"taxi": DomainGoal({}, frozenset({"PHONE"})), "train": DomainGoal({"day": "monday"}, frozenset())}
    inform, success = score(goal, ["your taxi [value_car] , [value_phone]"], [{}], [["taxi"]])
    assert inform["total"] and success["total"]


@pytest.fixture(scope="session")
def test_split() -> list[Dialogue]:
    return load_multiwoz(require_data("multiwoz21"), "test")


@pytest.fixture(scope="session")
def standard(test_split: list[Dialogue]) -> StandardEvaluator:
    return StandardEvaluator(test_split, MultiWozDB(require_data("multiwoz21", "db")))


@pytest.mark.slow
def test_gold_responses_and_states_score_bleu_100(standard: StandardEvaluator, test_split: list[Dialogue]) -> None:
    predictions = {d.id: [PredictedTurn(t.system_delex, t.belief_state) for t in d.turns] for d in test_split}
    result = standard.evaluate(predictions)
    assert result.bleu == pytest.approx(100.0)
    assert result.coverage.complete and result.coverage.turns == 7372
    assert result.inform["total"] > 90 and result.success["total"] > 85  # the corpus' own (93.7 / 90.9 in 2.2)
    half = dict(list(predictions.items())[:500])
    assert standard.evaluate(half, success=False, lexical=False).coverage.missing_dialogues == sorted(
        d.id for d in test_split[500:]
    )


@pytest.mark.slow
@pytest.mark.parametrize("system, tolerance", [("mintl", 0.1), ("ubar", 0.1), ("sfn", 0.5)])
def test_published_scores_reproduce(standard: StandardEvaluator, system: str, tolerance: float) -> None:
    predictions = load_published_predictions(require_data("mwzeval-predictions", "predictions.zip"), system)
    result = standard.evaluate(predictions, system)
    published = PUBLISHED[system]
    assert result.gold_states is not published.own_states
    assert result.inform["total"] == pytest.approx(published.inform, abs=tolerance)
    assert result.success["total"] == pytest.approx(published.success, abs=tolerance)
    assert result.bleu == pytest.approx(published.bleu, abs=1.0)
    assert result.combined == pytest.approx((result.inform["total"] + result.success["total"]) / 2 + result.bleu)
