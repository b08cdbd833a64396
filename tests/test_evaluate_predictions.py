"""Reading and checking prediction files: every error names the file, the dialogue and the turn."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from todrl.evaluate.predictions import (
    PredictedTurn,
    PredictionError,
    check_coverage,
    dump_predictions,
    load_predictions,
    parse_predictions,
)


def write(tmp_path: Path, payload: object) -> Path:
    path = tmp_path / "preds.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_load_normalizes_ids_and_keeps_optional_fields(tmp_path: Path) -> None:
    path = write(tmp_path, {"SNG0073.json": [{"response": "hi", "state": {"taxi": {"leave": "17:15"}}, "active_domains": ["Taxi"]}]})
    predictions = load_predictions(path)
    assert predictions == {"sng0073": [PredictedTurn("hi", {"taxi": {"leave": "17:15"}}, ["taxi"])]}
    again = tmp_path / "again.json"
    dump_predictions(predictions, again)
    assert load_predictions(again) == predictions
    dump_predictions({"x": [PredictedTurn("only a response")]}, again)
    assert json.loads(again.read_text()) == {"x": [{"response": "only a response"}]}


@pytest.mark.parametrize(
    "payload, message",
    [
        ("{not json", "not valid JSON"),
        ([1, 2], "expected an object of dialogue id"),
        ({"sng0073": "hello"}, "dialogue sng0073: expected a list of turns"),
        ({"sng0073": [{"response": "ok"}, {"state": {}}]}, "dialogue sng0073, turn 1: missing 'response'"),
        ({"sng0073": [{"response": 5}]}, "dialogue sng0073, turn 0: 'response' must be a string"),
        ({"sng0073": [{"response": "a", "state": {"taxi": ["x"]}}]}, "turn 0: state['taxi'] must be an object"),
        ({"sng0073": [{"response": "a", "state": {"taxi": {"leave": None}}}]}, "state['taxi']['leave'] must be a string"),
        ({"sng0073": [{"response": "a", "active_domains": "taxi"}]}, "'active_domains' must be a list"),
    ],
)
def test_malformed_files_name_where(tmp_path: Path, payload: object, message: str) -> None:
    path = write(tmp_path, payload)
    with pytest.raises(PredictionError, match=re.escape(message)) as error:
        load_predictions(path)
    assert str(error.value).startswith(str(path))


def test_missing_file() -> None:
    with pytest.raises(PredictionError, match="file not found"):
        load_predictions("/nonexistent/preds.json")


def test_coverage_rejects_unknown_ids_and_extra_turns_and_reports_gaps() -> None:
    reference = {"a": 2, "b": 3, "c": 1}
    with pytest.raises(PredictionError, match="dialogue zzz: unknown dialogue id"):
        check_coverage(parse_predictions({"zzz": []}), reference, "f.json")
    with pytest.raises(PredictionError, match="dialogue a, turn 2: 3 turns predicted but the dialogue has 2"):
        check_coverage(parse_predictions({"a": [{"response": "x"}] * 3}), reference, "f.json")
    coverage = check_coverage(parse_predictions({"a": [{"response": "x"}] * 2, "b": [{"response": "y"}]}), reference, "f")
    assert (coverage.dialogues, coverage.turns) == (2, 3)
    assert coverage.missing_dialogues == ["c"] and coverage.truncated_dialogues == ["b"]
    assert not coverage.complete
