"""SGD state tracking as google-research's schema_guided_dst scores it, on a slice of the real test split.

Expected values come from reading ``schema_guided_dst/metrics.py`` (``fuzzy_string_match``,
``noncat_slot_value_match``, ``compare_slot_values``, ``get_average_and_joint_goal_accuracy``)
and ``evaluate.py`` (``get_metrics``); fuzzywuzzy 0.18's numbers were checked with it installed.
"""

from __future__ import annotations

import json
import statistics
import zipfile
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.errors import DataError
from todrl.data.sgd import SgdService, SgdSlot, load_sgd
from todrl.evaluate.cli import main
from todrl.evaluate.dst import DstEvaluator
from todrl.evaluate.predictions import PredictedTurn, PredictionError, dump_predictions
from todrl.evaluate.sgd import SgdEvaluator, score_frame, token_sort_ratio
from todrl.evaluate.sgd_format import read_prediction_dir, write_prediction_dir

SLICE = {"dialogues_001.json": 3, "dialogues_011.json": 2, "dialogues_021.json": 2}
"""Restaurants_2 (unseen), Hotels_2 (seen), RideSharing_2 (seen) with Music_3 (unseen) in one dialogue."""


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """The slice laid out as a release: test/dialogues_*.json and schema.json, train/schema.json."""
    sgd = require_data("sgd")
    root = tmp_path_factory.mktemp("sgd")
    for split, members in (("test", SLICE), ("train", {})):
        (root / split).mkdir()
        with zipfile.ZipFile(sgd / f"{split}.zip") as archive:
            for name, count in members.items():
                (root / split / name).write_text(json.dumps(json.loads(archive.read(name))[:count]))
            schema = next(n for n in archive.namelist() if n.endswith("schema.json"))
            (root / split / "schema.json").write_bytes(archive.read(schema))
    return root


@pytest.fixture(scope="module")
def evaluator(data) -> SgdEvaluator:
    return SgdEvaluator.from_split(data, "test")


@pytest.fixture(scope="module")
def records(data):
    return load_sgd(data, "test")


def gold_predictions(records) -> dict[str, list[PredictedTurn]]:
    """The gold states as todrl's records spell them (lower-cased, tokenized, times rewritten)."""
    return {d.id: [PredictedTurn("", state=json.loads(json.dumps(t.belief_state))) for t in d.turns] for d in records}


def frames(evaluator, services=None) -> list[str]:
    """Services of every reference USER frame: the official unit (one score per frame, evaluate.py get_metrics)."""
    return [
        frame["service"]
        for dialogue in evaluator.gold.values()
        for turn in dialogue["turns"]
        if turn["speaker"] == "USER"
        for frame in turn["frames"]
        if services is None or frame["service"] in services
    ]


def active_frames(evaluator) -> int:
    """Frames whose reference holds a slot: the only ones average goal accuracy averages over."""
    return sum(
        bool(frame["state"]["slot_values"])
        for dialogue in evaluator.gold.values()
        for turn in dialogue["turns"]
        if turn["speaker"] == "USER"
        for frame in turn["frames"]
    )


@pytest.mark.parametrize(
    ("reference", "hypothesis", "difflib", "levenshtein"),
    [
        ("Bird Dog", "Bird", 67, 67),  # metrics_test_refdata.json: joint_noncat_accuracy 0.67
        ("San Jose", "San Jose.", 100, 100),  # full_process turns non-word characters into spaces
        ("New York", "york new", 100, 100),  # tokens sorted
        ("Café", "Caf", 100, 100),  # force_ascii drops code points 128-255 ...
        ("Chang\u2019s", "Chang's", 100, 100),  # ... while U+2019 is a non-word character like "'"
        ("a_b", "a b", 67, 67),  # "_" is a word character to \W
        (".", "?", 100, 100),  # both empty after processing: check_for_equivalence comes first
        (".", "a", 0, 0),  # check_empty_string
        ("12 pm", "12:00", 40, 40),  # "12 pm" against the sorted "00 12"
        ("10th of March", "11 o'clock in the morning", 16, 32),  # difflib's blocks miss the longest common subsequence
    ],
)
def test_token_sort_ratio_is_fuzzywuzzys(reference, hypothesis, difflib, levenshtein):
    assert token_sort_ratio(reference, hypothesis, "difflib") == difflib
    assert token_sort_ratio(reference, hypothesis, "levenshtein") == levenshtein


def test_the_official_unit_test_frame():
    """metrics_test_refdata.json's frame pair: JGA 0 (price_range missing), AGA (1 + 0 + 0.67 + 1) / 4 = 0.6675."""
    def slot(name, categorical=False):
        return SgdSlot(name, "", categorical, [], True)

    names = ["restaurant_name", "date", "time", "serves_alcohol", "has_live_music", "phone_number", "street_address",
             "party_size", "price_range", "city", "cuisine"]
    categorical = {"serves_alcohol", "has_live_music", "party_size", "price_range"}
    service = SgdService("restaurants_1", "", {n: slot(n, n in categorical) for n in names}, {})
    reference = {"city": ["Palo Alto"], "price_range": ["moderate"], "restaurant_name": ["Bird Dog"], "cuisine": ["American"]}
    predicted = {"city": ["Palo Alto"], "restaurant_name": ["Bird"], "cuisine": ["American"]}
    joint, average = score_frame(reference, predicted, service, "difflib")
    assert joint == 0.0 and average == pytest.approx(0.6675)
    assert score_frame(reference, predicted | {"price_range": ["moderate"]}, service, "difflib")[0] == pytest.approx(0.67)


def test_gold_scores_100_in_either_spelling(evaluator, records):
    """Gold in the dataset's spelling, and gold as todrl spells it once respelled, are perfect; respelling is needed."""
    seen = evaluator.references.seen  # test-schema services the train schema has too
    assert {"hotels_2", "ridesharing_2"} <= seen and not {"restaurants_2", "music_3"} & seen
    for result in (evaluator.evaluate_official(evaluator.gold), evaluator.evaluate(gold_predictions(records))):
        assert result.all.joint_goal_accuracy == result.all.average_goal_accuracy == 100.0
        assert result.all.frames == len(frames(evaluator)) and result.volatility == 0.0
        assert result.seen.frames == len(frames(evaluator, {"Hotels_2", "RideSharing_2"}))
        assert set(result.per_service) == {"Restaurants_2", "Hotels_2", "RideSharing_2", "Music_3"}
    lowered = evaluator.official_dialogues(gold_predictions(records))
    ride = lowered["21_00000"]["turns"][0]["frames"][0]["state"]["slot_values"]
    assert ride == {"ride_type": ["Luxury"]}  # "luxury" back to the schema's possible value
    time = lowered["1_00000"]["turns"][4]["frames"][0]["state"]["slot_values"]["time"]
    assert time == ["12 pm"]  # todrl's "12:00" back to what the system said


def perturbed(records, dialogue_id, turn, change):
    predictions = gold_predictions(records)
    predictions[dialogue_id][turn].state = change(predictions[dialogue_id][turn].state)
    return predictions


def test_punctuation_is_forgiven_officially_not_strictly(evaluator, records):
    predictions = perturbed(records, "1_00000", 1, lambda s: s | {"restaurants_2": s["restaurants_2"] | {"location": "corte madera ."}})
    assert evaluator.evaluate(predictions).all.joint_goal_accuracy == 100.0
    assert DstEvaluator(records).evaluate(predictions).joint_goal_accuracy < 100.0


def test_a_wrong_categorical_value_fails_its_frame_and_only_it(evaluator, records):
    """RideSharing_2 ride_type Luxury -> Pool in the first turn: one frame scores 0 (compare_slot_values, exact)."""
    result = evaluator.evaluate(perturbed(records, "21_00000", 0, lambda s: {"ridesharing_2": {"ride_type": "pool"}}))
    n, rides = len(frames(evaluator)), len(frames(evaluator, {"RideSharing_2"}))
    assert result.all.joint_goal_accuracy == pytest.approx(100 * (n - 1) / n)
    assert result.all.average_goal_accuracy == pytest.approx(100 * (active_frames(evaluator) - 1) / active_frames(evaluator))
    assert result.unseen.joint_goal_accuracy == 100.0 and result.seen.joint_goal_accuracy < 100.0
    expected = {"Hotels_2": 100.0, "Music_3": 100.0, "Restaurants_2": 100.0, "RideSharing_2": 100 * (rides - 1) / rides}
    assert result.per_service == pytest.approx(expected)
    assert result.volatility == pytest.approx(statistics.pstdev(expected.values()))


def test_categorical_values_are_case_sensitive(evaluator):
    """In the official format the value is taken as written: "luxury" is not "Luxury"."""
    dialogues = json.loads(json.dumps(evaluator.gold))
    dialogues["21_00000"]["turns"][0]["frames"][0]["state"]["slot_values"]["ride_type"] = ["luxury"]
    n = len(frames(evaluator))
    assert evaluator.evaluate_official(dialogues).all.joint_goal_accuracy == pytest.approx(100 * (n - 1) / n)


def test_a_near_miss_costs_a_fraction_of_a_frame(evaluator, records):
    """"Corte" for "Corte Madera": token_sort_ratio 59 -> frame JGA 0.59 (a product, not a pass), AGA (3 + 0.59) / 4."""
    def corte(state):
        return {"restaurants_2": state["restaurants_2"] | {"location": "corte"}}

    result = evaluator.evaluate(perturbed(records, "1_00000", 1, corte))
    n, active = len(frames(evaluator)), active_frames(evaluator)
    assert result.all.joint_goal_accuracy == pytest.approx(100 * (n - 1 + 0.59) / n)
    assert result.all.average_goal_accuracy == pytest.approx(100 * (active - 1 + 3.59 / 4) / active)


def test_only_the_turns_frames_and_the_schemas_slots_count(evaluator, records):
    """A service carried into turns without its frame, or a slot outside the schema, is not scored (get_metrics)."""
    predictions = gold_predictions(records)
    ride = predictions["21_00000"][2].state["ridesharing_2"]
    for turn in predictions["21_00000"][4:]:
        turn.state = turn.state | {"ridesharing_2": ride}
    predictions["1_00001"][0].state["restaurants_2"]["not_a_slot"] = "x"
    assert evaluator.evaluate(predictions).all.joint_goal_accuracy == 100.0
    assert DstEvaluator(records).evaluate(predictions).joint_goal_accuracy < 100.0


def test_extra_and_missing_slots_and_services(evaluator, records):
    """A slot only the prediction holds, or a service it leaves out, fails the frame (HYP=active / HYP=off -> 0)."""
    n, active = len(frames(evaluator)), active_frames(evaluator)
    extra = perturbed(records, "1_00000", 0, lambda s: {"restaurants_2": s["restaurants_2"] | {"number_of_seats": "2"}})
    result = evaluator.evaluate(extra)
    assert result.all.joint_goal_accuracy == pytest.approx(100 * (n - 1) / n) and result.all.average_goal_accuracy == 100.0
    missing = evaluator.evaluate(perturbed(records, "21_00000", 4, lambda s: {}))  # Music_3 with 4 gold slots
    assert missing.all.joint_goal_accuracy == pytest.approx(100 * (n - 1) / n)
    assert missing.all.average_goal_accuracy == pytest.approx(100 * (active - 1) / active)


def test_official_format_errors_name_the_place(evaluator):
    dialogues = json.loads(json.dumps(evaluator.gold))
    del dialogues["21_00000"]["turns"][8]["frames"][0]
    with pytest.raises(PredictionError, match=r"21_00000, turn 8: no predicted frame for service Music_3"):
        evaluator.evaluate_official(dialogues)  # evaluate.py raises too: "Frame for service ... not found"
    dialogues = json.loads(json.dumps(evaluator.gold))
    dialogues["1_00000"]["turns"][2]["utterance"] += "!"
    with pytest.raises(PredictionError, match=r"1_00000, turn 2: the utterance differs"):
        evaluator.evaluate_official(dialogues)
    dialogues = json.loads(json.dumps(evaluator.gold))
    dialogues["1_00000"]["turns"][0]["frames"][0]["state"]["slot_values"]["date"] = []
    with pytest.raises(PredictionError, match=r"value of 'date' should be a non-empty list"):
        evaluator.evaluate_official(dialogues)
    with pytest.raises(PredictionError, match=r"9_99999: unknown dialogue id"):
        evaluator.evaluate_official({"9_99999": dialogues["1_00000"]})


def test_written_folder_has_the_release_structure_and_scores_the_same(evaluator, records, tmp_path):
    predictions = perturbed(records, "1_00000", 1, lambda s: {"restaurants_2": s["restaurants_2"] | {"location": "corte"}})
    written = write_prediction_dir(evaluator.official_dialogues(predictions), evaluator.references, tmp_path)
    assert [p.name for p in written] == list(SLICE)
    for path in written:
        released = {d["dialogue_id"]: d for d in json.loads(path.read_text())}
        assert list(released) == [d for d in evaluator.gold if evaluator.files[d] == path.name]
        for dialogue_id, dialogue in released.items():
            gold = evaluator.gold[dialogue_id]
            assert dialogue["services"] == gold["services"] and len(dialogue["turns"]) == len(gold["turns"])
            for turn, reference in zip(dialogue["turns"], gold["turns"]):
                assert (turn["speaker"], turn["utterance"]) == (reference["speaker"], reference["utterance"])
                assert [f["service"] for f in turn["frames"]] == [f["service"] for f in reference["frames"]]
                if turn["speaker"] == "SYSTEM":
                    assert turn == reference
                for frame in turn["frames"] if turn["speaker"] == "USER" else []:
                    assert set(frame) == {"service", "actions", "state"}  # spans dropped, as pred_utils does
                    assert set(frame["state"]) == {"active_intent", "requested_slots", "slot_values"}
    assert evaluator.evaluate_official(read_prediction_dir(tmp_path)) == evaluator.evaluate(predictions)
    (tmp_path / "schema.json").write_text("[]")
    with pytest.raises(DataError, match="schema.json"):
        write_prediction_dir(evaluator.official_dialogues(predictions), evaluator.references, tmp_path)


def test_cli_reports_official_and_strict_and_writes_the_folder(data, records, tmp_path, capsys):
    predictions = perturbed(records, "21_00000", 0, lambda s: {"ridesharing_2": {"ride_type": "pool"}})
    dump_predictions(predictions, tmp_path / "predictions.json")
    argv = ["--predictions", str(tmp_path / "predictions.json"), "--dataset", "sgd", "--data-dir", str(data),
            "--sgd-prediction-dir", str(tmp_path / "official"), "--json"]
    assert main(argv) == 0
    result = json.loads(capsys.readouterr().out)
    evaluator = SgdEvaluator.from_split(data, "test")
    rescored = evaluator.evaluate_official(read_prediction_dir(tmp_path / "official")).as_dict()
    assert result["sgd"] == json.loads(json.dumps(rescored))
    n = len(frames(evaluator))
    assert result["sgd"]["all"]["joint_goal_accuracy"] == pytest.approx(100 * (n - 1) / n)
    assert result["sgd_strict"]["joint_goal_accuracy"] < 100.0


def test_prediction_folder_errors_name_the_file(tmp_path):
    with pytest.raises(PredictionError, match=r"no \*\.json prediction files"):
        read_prediction_dir(tmp_path)
    (tmp_path / "dialogues_001.json").write_text('[{"turns": []}]')
    with pytest.raises(PredictionError, match=r"dialogues_001\.json: dialogue #0: a dialogue has no dialogue_id"):
        read_prediction_dir(tmp_path)
    (tmp_path / "dialogues_001.json").write_text('[{"dialogue_id": "1_00000", "services": []')
    with pytest.raises(DataError, match=r"dialogues_001\.json: .*JSON"):
        read_prediction_dir(tmp_path)


def test_seen_services_need_the_train_schema(data, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in (data / "test").iterdir():
        (flat / path.name).write_bytes(path.read_bytes())
    with pytest.raises(DataError, match="train split's schema.json"):
        SgdEvaluator.from_split(flat, "test")
