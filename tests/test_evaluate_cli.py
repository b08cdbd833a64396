"""``python -m todrl.evaluate`` on a predictions file and on a (tiny, untrained) checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.incar import load_incar
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.evaluate import cli
from todrl.evaluate.cli import main
from todrl.evaluate.corpus import CorpusScorer
from todrl.evaluate.predictions import MAX_RESPONSE_CHARS, PredictedTurn, dump_predictions, load_predictions
from todrl.evaluate.published import load_published_predictions

SAMPLE = ["--data-dir", str(SAMPLE_PATH), "--no-cache"]
TOO_LONG = "a" * (MAX_RESPONSE_CHARS + 1)


def error_line(capsys: pytest.CaptureFixture[str]) -> str:
    """The one line a refused command prints."""
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.fixture
def no_corpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading the corpus fails the test: these errors must come before any work."""

    def refuse(*args, **kwargs):
        raise AssertionError("the corpus was read before the error")

    monkeypatch.setattr(cli, "load_dialogues", refuse)
    monkeypatch.setattr(CorpusScorer, "cached", refuse)


def gold_file(path: Path, dialogues, turns: int | None = None) -> Path:
    """The gold replies and states of `dialogues` (their first `turns` turns) as a predictions file."""
    dump_predictions({d.id: [PredictedTurn(t.system_delex, t.belief_state) for t in d.turns[:turns]]
                      for d in dialogues}, path)
    return path


@pytest.mark.slow
def test_scores_a_predictions_file_as_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = require_data("multiwoz21")
    ubar = load_published_predictions(require_data("mwzeval-predictions", "predictions.zip"), "ubar")
    path = tmp_path / "ubar_part.json"
    dump_predictions(dict(list(ubar.items())[:100]), path)
    assert main(["--predictions", str(path), "--data-dir", str(data), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    standard = result["standard"]
    assert standard["coverage"]["dialogues"] == 100 and len(standard["coverage"]["missing_dialogues"]) == 900
    assert 0 < standard["inform"]["total"] <= 100 and 0 < standard["bleu"] < 100
    assert standard["combined"] == pytest.approx((standard["inform"]["total"] + standard["success"]["total"]) / 2 + standard["bleu"])
    assert "900 dialogues missing" in captured.err
    assert 0 < result["dst"]["jga_exact"] < result["dst"]["jga"] < 100  # UBAR writes states: both JGA definitions


def test_malformed_file_is_an_error_naming_dialogue_and_turn(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"sng0073": [{"response": "fine"}, {"response": ["not", "text"]}]}))
    assert main(["--predictions", str(path), "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert f"error: {path}: dialogue sng0073, turn 1: 'response' must be a string" in capsys.readouterr().err


@pytest.mark.slow
def test_checkpoint_mode_generates_writes_and_scores(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from todrl.format import build_examples, format_tokens
    from todrl.models import build_tiny

    data = require_data("kvret")
    dialogues = load_incar(data, "test")[:2]
    examples = build_examples(dialogues)
    model, tokenizer = build_tiny("tiny", [e.source + " " + e.target for e in examples], format_tokens(e.target for e in examples), vocab_size=300)
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    output = tmp_path / "generated.json"
    argv = ["--checkpoint", str(tmp_path / "ckpt"), "--dataset", "incar", "--data-dir", str(data), "--limit", "2",
            "--max-new-tokens", "8", "--num-beams", "2", "--output", str(output)]  # fmt: skip
    assert main(argv) == 0
    predictions = load_predictions(output)
    assert list(predictions) == [d.id for d in dialogues]
    assert [len(turns) for turns in predictions.values()] == [len(d.turns) for d in dialogues]
    out = capsys.readouterr().out
    assert "SuccF1" in out and f"PARTIAL: 2 of {len(load_incar(data, 'test'))} dialogues" in out  # --limit 2


@pytest.mark.parametrize("argv, says", [
    (["--limit", "0"], "--limit must be at least 1, got 0"),
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--max-new-tokens", "-1"], "--max-new-tokens must be at least 1, got -1"),
    (["--num-beams", "0"], "--num-beams must be at least 1, got 0"),
    (["--limit", "5", "--strict"], "--strict refuses --limit"),
    (["--output", "{tmp}/no/such/dir/p.json"], "--output {tmp}/no/such/dir/p.json: no folder {tmp}/no/such/dir"),
    (["--output", "{tmp}"], "--output {tmp}: is a directory"),
    (["--checkpoint", "{tmp}/nowhere"], "--checkpoint {tmp}/nowhere: no such model directory"),
])
def test_checkpoint_settings_are_refused_in_one_line_before_any_work(
        argv: list[str], says: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], no_corpus: None) -> None:
    (tmp_path / "ckpt").mkdir()
    argv = [arg.format(tmp=tmp_path) for arg in ["--checkpoint", "{tmp}/ckpt", *argv]]
    assert main(argv) == 2
    assert says.format(tmp=tmp_path) in error_line(capsys)


@pytest.mark.parametrize("content, says", [
    (None, "is a directory, not a predictions file"),
    ("[" * 100_000 + "]" * 100_000, "JSON nested too deeply to read"),
    ("{}", "no predicted turns"),
    ('{"sng0073": []}', "no predicted turns"),
    (json.dumps({"sng0073": [{"response": TOO_LONG}]}),
     f"dialogue sng0073, turn 0: 'response' has {MAX_RESPONSE_CHARS + 1:,} characters"),
    (json.dumps({"sng0073": [{"response": "ok"}, {"response": "ok", "state": {"hotel": {"name": TOO_LONG}}}]}),
     f"dialogue sng0073, turn 1: state['hotel']['name'] has {MAX_RESPONSE_CHARS + 1:,} characters"),
])
@pytest.mark.parametrize("dataset", ["multiwoz21", "incar", "sgd"])
def test_unusable_predictions_files_are_one_line_naming_the_file(
        content: str | None, says: str, dataset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_corpus: None) -> None:
    path = tmp_path / "predictions.json"
    if content is None:
        path.mkdir()
    else:
        path.write_text(content)
    assert main(["--predictions", str(path), "--dataset", dataset]) == 2
    line = error_line(capsys)
    assert line.startswith(f"error: {path}: ") and says in line


def test_a_partial_file_is_scored_with_one_warning_and_says_so_in_its_result(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dialogues = load_multiwoz(SAMPLE_PATH, "test")  # 10 dialogues, 59 turns
    path = gold_file(tmp_path / "partial.json", dialogues[:3], turns=2)
    assert main(["--predictions", str(path), *SAMPLE, "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["coverage"] == {
        "complete": False, "dialogues": 3, "split_dialogues": 10, "turns": 6, "split_turns": 59,
        "missing_dialogues": 7, "truncated_dialogues": 3,
    }
    partial = "PARTIAL: 3 of 10 dialogues, 6 of 59 turns predicted (7 dialogues missing, 3 cut short)"
    assert captured.err.splitlines() == [f"warning: {path}: {partial}: only the predicted turns are scored"]
    assert main(["--predictions", str(path), *SAMPLE]) == 0
    assert partial in capsys.readouterr().out.splitlines()[1]


def test_strict_refuses_a_partial_file_and_scores_a_complete_one(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dialogues = load_multiwoz(SAMPLE_PATH, "test")
    partial = gold_file(tmp_path / "partial.json", dialogues[1:])
    assert main(["--predictions", str(partial), *SAMPLE, "--strict"]) == 2
    assert "--strict: the file does not cover the split, 9 of 10 dialogues" in error_line(capsys)
    complete = gold_file(tmp_path / "complete.json", dialogues)
    assert main(["--predictions", str(complete), *SAMPLE, "--strict", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["coverage"]["complete"] is True and "PARTIAL" not in captured.err


@pytest.mark.parametrize("dataset, definition", [("multiwoz21", "dst"), ("incar", "dst"), ("sgd", "sgd_strict")])
def test_every_corpus_reports_the_coverage_of_its_split(dataset: str, definition: str) -> None:
    # The sample's dialogues stand in for each corpus's: coverage is counted the same way for all of them.
    dialogues = load_multiwoz(SAMPLE_PATH, "test")
    scorer = CorpusScorer(dataset, dialogues, SAMPLE_PATH, "test", [definition])
    predictions = {d.id: [PredictedTurn(t.system_delex, t.belief_state) for t in d.turns] for d in dialogues[:4]}
    assert scorer.score(predictions)["coverage"] == {
        "complete": False, "dialogues": 4, "split_dialogues": 10, "turns": sum(len(d.turns) for d in dialogues[:4]),
        "split_turns": 59, "missing_dialogues": 6, "truncated_dialogues": 0,
    }
