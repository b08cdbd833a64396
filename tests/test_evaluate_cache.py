"""The evaluate command's cache of prepared references: same scores, read instead of rebuilt, never stale."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.evaluate import cache
from todrl.evaluate.cli import main
from todrl.evaluate.predictions import PredictedTurn, dump_predictions


@pytest.fixture
def corpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A private copy of the embedded sample, its gold test replies as predictions, and an empty cache."""
    data = tmp_path / "multiwoz21"
    shutil.copytree(SAMPLE_PATH, data)
    predictions = tmp_path / "gold.json"
    dump_predictions({d.id: [PredictedTurn(t.system_delex, t.belief_state) for t in d.turns]
                      for d in load_multiwoz(data, "test")}, predictions)
    monkeypatch.setenv("TODRL_CACHE", str(tmp_path / "cache"))
    return data, predictions


def scores(capsys: pytest.CaptureFixture[str], data: Path, predictions: Path, *extra: str) -> dict:
    assert main(["--predictions", str(predictions), "--data-dir", str(data), "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def entries() -> list[Path]:
    return sorted((cache.cache_dir() / "evaluate").glob("*.pickle"))


def test_second_run_reads_the_prepared_references_and_scores_the_same(corpus, capsys, monkeypatch):
    data, predictions = corpus
    first = scores(capsys, data, predictions)
    assert len(entries()) == 1 and first["standard"]["bleu"] == pytest.approx(100.0)

    def parse(*args, **kwargs):
        raise AssertionError("the corpus was parsed although its prepared references are cached")

    with monkeypatch.context() as patch:
        patch.setattr("todrl.data.load_dialogues", parse)
        assert scores(capsys, data, predictions) == first
    assert scores(capsys, data, predictions, "--no-cache") == first and len(entries()) == 1


def test_a_changed_data_file_or_option_is_a_new_entry(corpus, capsys):
    data, predictions = corpus
    scores(capsys, data, predictions)
    scores(capsys, data, predictions, "--evaluator", "legacy")
    assert len(entries()) == 2
    restaurants = data / "db" / "restaurant_db.json"
    rows = json.loads(restaurants.read_text())
    restaurants.write_text(json.dumps(rows[1:]))  # one venue fewer: goals may match differently
    scores(capsys, data, predictions)
    assert len(entries()) == 3


def test_an_unreadable_entry_is_rebuilt_with_a_warning(corpus, capsys):
    data, predictions = corpus
    first = scores(capsys, data, predictions)
    (entry,) = entries()
    entry.write_bytes(entry.read_bytes()[:100])
    assert main(["--predictions", str(predictions), "--data-dir", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out) == first and f"unreadable cache entry {entry}" in captured.err
    assert entry.stat().st_size > 100
