"""scripts/plot_rewards.py: reward and KL curves of RL runs to PNG."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_rewards.py"


@pytest.fixture(scope="module")
def plot_rewards():
    spec = importlib.util.spec_from_file_location("plot_rewards", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(directory: Path, rows: list[dict]) -> Path:
    directory.mkdir(parents=True)
    (directory / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return directory


def test_draws_the_curves_each_run_logged(plot_rewards, tmp_path, capsys):
    rows = [{"iteration": i, "env/task_reward": 0.1 * i, "objective/kl": 0.5, "objective/kl_coef": 0.01} for i in range(1, 6)]
    rows[-1]["eval/task_reward"] = 0.4
    run = write_run(tmp_path / "run", rows)
    assert plot_rewards.main([str(run), "--smooth", "2"]) == 0
    png = run / "rewards.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    drawn = capsys.readouterr().out
    assert "eval/task_reward" in drawn and "eval/combined" not in drawn


def test_moving_average_is_trailing(plot_rewards):
    assert plot_rewards.moving_average([1.0, 3.0, 5.0, 7.0], 2) == [1.0, 2.0, 4.0, 6.0]


def test_bad_input_is_named(plot_rewards, tmp_path, capsys):
    assert plot_rewards.main([str(tmp_path / "missing")]) == 2
    assert "no metrics.jsonl" in capsys.readouterr().err
    run = tmp_path / "broken"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"iteration": 1}\nnot json\n')
    assert plot_rewards.main([str(run)]) == 2
    assert "line 2" in capsys.readouterr().err
