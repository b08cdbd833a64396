"""Smoke runs of scripts/bench_learning.py on the embedded MultiWOZ sample, and its figures' arithmetic."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_learning", ROOT / "scripts" / "bench_learning.py")
bench = importlib.util.module_from_spec(spec)
sys.modules["bench_learning"] = bench  # its dataclasses resolve their annotations through the module
spec.loader.exec_module(bench)

SMOKE_CORPUS = {
    "rewards": ["tod"],
    "max_new_tokens": 24,
    "planned_minutes": {"sft": 0.2, "rl": 0.1, "test": 0.05},
    "sft": {"model": "tiny", "dataset": "multiwoz21", "data_dir": None, "train_split": "train", "dev_split": "val",
            "max_steps": 10, "batch_size": 8, "vocab_size": 600, "max_target_length": 48, "max_source_length": 96},
    "rl": {"episodes": 16, "batch_size": 8, "minibatch_size": 8, "ppo_epochs": 1, "max_new_tokens": 24,
           "max_source_length": 96, "eval_dialogues": 2, "eval_every": 1, "max_contexts": 16},
}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def write_configs(tmp_path: Path, corpus: dict) -> Path:
    (tmp_path / "mwoz.yaml").write_text(yaml.safe_dump(corpus))
    top = {"output_dir": str(tmp_path / "bench"), "corpora": ["multiwoz21"], "multiwoz21": str(tmp_path / "mwoz.yaml"),
           "seeds": [1, 2], "eval_batch_size": 32}
    (tmp_path / "bench.yaml").write_text(yaml.safe_dump(top))
    return tmp_path / "bench.yaml"


@pytest.mark.slow
def test_sample_run_scores_sft_and_every_rl_seed_then_resumes_without_rework(tmp_path, one_thread, capsys):
    config = write_configs(tmp_path, SMOKE_CORPUS)
    bench.main(["--config", str(config)])
    out = tmp_path / "bench"
    results = json.loads((out / "results.json").read_text())
    mwoz = results["multiwoz21"]
    assert [row["model"] for row in mwoz["rows"]] == ["SFT", "RL, Rtod"]
    assert [row["seeds"] for row in mwoz["rows"]] == [1, 2]
    for row in mwoz["rows"]:
        for key in ("inform", "success", "bleu", "combined", "legacy_combined", "jga"):
            assert math.isfinite(row["mean"][key]), (row["model"], key)
    seeds = mwoz["rl"]["tod"]
    assert [run["seed"] for run in seeds] == [1, 2]
    assert mwoz["rows"][1]["mean"]["combined"] == pytest.approx(sum(r["headline"]["combined"] for r in seeds) / 2)
    # one generation covers every test turn of the sample, and feeds every evaluator
    predictions = json.loads((out / "multiwoz21" / "rl_tod_s1" / "predictions_test.json").read_text())
    scores = seeds[0]["scores"]
    assert len(predictions) == mwoz["test_dialogues"] == 10
    assert sum(len(turns) for turns in predictions.values()) == scores["turns"] == scores["dst"]["turns"]
    assert {"standard", "legacy", "legacy_gold_db", "dst"} <= set(scores)
    assert [v["metric"] for v in mwoz["verdicts"]] == ["combined", "legacy_combined"]
    assert (out / "curves_multiwoz21.png").stat().st_size > 10_000
    assert set(json.loads((out / "stage_seconds.json").read_text())) == set(results["stages"]) and len(results["stages"]) == 6
    assert "| RL, Rtod | 2 |" in (out / "results.md").read_text()
    assert "plan: 6 stages" in capsys.readouterr().out

    bench.main(["--config", str(config)])
    again = json.loads((out / "results.json").read_text())
    assert all(stage["skipped"] for stage in again["stages"].values())
    assert again["multiwoz21"]["rows"] == mwoz["rows"] and again["wall_seconds"] == pytest.approx(results["wall_seconds"])


def test_scales_share_the_pipeline_and_the_cpu_plan_fits_90_minutes():
    cpu, gpu = bench.parse_args([]), bench.parse_args(["--scale", "gpu"])
    assert cpu.corpora == gpu.corpora == ["multiwoz21", "incar"] and cpu.seeds == gpu.seeds == [1, 2, 3]
    planned = 0.0
    for corpus in cpu.corpora:
        small, large = cpu.corpus(corpus), gpu.corpus(corpus)
        assert (small.sft.model, large.sft.model) == ("tiny", "small")
        assert small.rewards == large.rewards and small.sft.dataset == large.sft.dataset == corpus
        runs = len(small.rewards) * len(cpu.seeds)
        planned += small.planned_minutes["sft"] + (runs + 1) * small.planned_minutes["test"] + runs * small.planned_minutes["rl"]
    assert cpu.corpus("multiwoz21").rewards == ["tod", "understanding", "generation", "none"]
    assert bench.parse_args(["--rewards", "tod"]).corpus("multiwoz21").rewards == ["tod"]
    with pytest.raises(SystemExit):
        bench.parse_args(["--rewards", "tod,bleu"])
    assert (cpu.corpus("multiwoz21").sft.train_split, cpu.corpus("multiwoz21").sft.dev_dialogues) == ("val", 50)
    assert planned <= 90


def test_mean_and_std_over_seeds_decide_the_verdict():
    sft = bench.aggregate("SFT", [{"combined": 50.0}])
    rl = bench.aggregate("RL", [{"combined": 52.0}, {"combined": 54.0}, {"combined": 56.0}])
    assert (rl.mean["combined"], rl.std["combined"], sft.std["combined"]) == (54.0, 2.0, None)
    assert bench.cell(rl, "combined") == "54.00 ± 2.00" and bench.cell(sft, "bleu") == "n/a"
    assert bench.verdict(sft, rl, "combined")["improves"]
    close = bench.aggregate("RL", [{"combined": 48.0}, {"combined": 51.0}, {"combined": 54.0}])
    assert not bench.verdict(sft, close, "combined")["improves"]


def test_corpus_config_errors_name_the_file(tmp_path):
    wrong = dict(SMOKE_CORPUS, sft=dict(SMOKE_CORPUS["sft"], dataset="incar"))
    cfg = bench.parse_args(["--config", str(write_configs(tmp_path, wrong))])
    with pytest.raises(ValueError, match=r"mwoz\.yaml: sft\.dataset is 'incar'"):
        cfg.corpus("multiwoz21")
    (tmp_path / "mwoz.yaml").write_text(yaml.safe_dump(dict(SMOKE_CORPUS, rewards=["tod", "bleu"])))
    with pytest.raises(ValueError, match="unknown reward.*bleu"):
        cfg.corpus("multiwoz21")
    with pytest.raises(FileNotFoundError, match="no corpus config"):
        bench.parse_args(["--config", str(tmp_path / "bench.yaml"), "--multiwoz21", str(tmp_path / "none.yaml")]).corpus("multiwoz21")
