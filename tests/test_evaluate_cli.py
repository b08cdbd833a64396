"""``python -m todrl.evaluate`` on a predictions file and on a (tiny, untrained) checkpoint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import require_data

from todrl.data.incar import load_incar
from todrl.evaluate.cli import main
from todrl.evaluate.predictions import dump_predictions, load_predictions
from todrl.evaluate.published import load_published_predictions


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
            "--max-new-tokens", "8", "--output", str(output)]  # fmt: skip
    assert main(argv) == 0
    predictions = load_predictions(output)
    assert list(predictions) == [d.id for d in dialogues]
    assert [len(turns) for turns in predictions.values()] == [len(d.turns) for d in dialogues]
    assert "SuccF1" in capsys.readouterr().out
