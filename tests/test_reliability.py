"""Runs that fail say so: non-finite training, shared or reused run directories, changed resumes, crash states,
settings out of range."""

from __future__ import annotations

import json
import os

import pytest
import torch

from todrl.health import TrainingFailed
from todrl.rl.config import RLConfig
from todrl.run_directory import RunDirectoryError, claim, read_log
from todrl.sft import SFTConfig, train

QUICK = dict(max_steps=2, eval_every=1, batch_size=8, vocab_size=400, max_target_length=48)


@pytest.mark.parametrize(
    ("program", "flags", "message"),
    [
        ("todrl.sft", ["--lr", "inf"], "lr must be in (0, 1], got inf"),
        ("todrl.sft", ["--lr", "1e30"], "lr must be in (0, 1]"),
        ("todrl.sft", ["--max-steps", "-5"], "max_steps must be in [0, inf)"),
        ("todrl.sft", ["--max-source-length", "0"], "max_source_length must be in [1, inf)"),
        ("todrl.sft", ["--resume", "--overwrite"], "resume and overwrite exclude each other"),
        ("todrl.rl", ["--save-every", "0"], "save_every must be in [1, inf)"),
        ("todrl.rl", ["--clip-range", "-0.2"], "clip_range must be in (0, 1)"),
        ("todrl.rl", ["--top-k", "-5"], "top_k must be in [0, inf)"),
        ("todrl.rl", ["--lr", "nan"], "lr must be in (0, 1], got nan"),
    ],
)
def test_settings_out_of_range_stop_before_anything_is_loaded(tmp_path, capsys, program, flags, message):
    from todrl.rl.__main__ import main as rl_main
    from todrl.sft import main as sft_main

    main = sft_main if program == "todrl.sft" else rl_main
    with pytest.raises(SystemExit) as exit_info:
        main([*flags, "--output-dir", str(tmp_path / "run"), "--data-dir", str(tmp_path / "no-corpus")])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_help_names_each_range(capsys):
    from todrl.rl.__main__ import main

    with pytest.raises(SystemExit):
        main(["--help"])
    assert "Range: (0, 1)" in " ".join(capsys.readouterr().out.split())


def test_a_run_directory_in_use_is_refused_naming_its_holder(tmp_path):
    with claim(tmp_path, SFTConfig(output_dir=str(tmp_path)), "sft"):
        with pytest.raises(RunDirectoryError, match=f"in use by another run \\(pid {os.getpid()}\\)"):
            train(SFTConfig(output_dir=str(tmp_path), **QUICK))
    assert not (tmp_path / "last").exists()


def test_a_torn_last_log_line_is_dropped_and_any_other_bad_line_named(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"iteration": 1}\n{"iteration": 2}\n{"iterat')
    assert read_log(log) == [{"iteration": 1}, {"iteration": 2}]
    log.write_text('{"iteration": 1}\nnot json\n{"iteration": 3}\n')
    with pytest.raises(RunDirectoryError, match=f"{log}, line 2: not a JSON record"):
        read_log(log)


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
def test_weights_that_stop_being_finite_end_the_run_without_a_best_checkpoint(tmp_path, monkeypatch, capsys):
    import todrl.sft

    real = todrl.sft.initial_policy

    def poisoned(cfg, examples):
        model, tokenizer = real(cfg, examples)
        with torch.no_grad():
            next(model.parameters())[0, 0] = float("nan")
        return model, tokenizer

    monkeypatch.setattr(todrl.sft, "initial_policy", poisoned)
    with pytest.raises(SystemExit) as exit_info:
        todrl.sft.main(["--output-dir", str(tmp_path), "--max-steps", "2", "--vocab-size", "400"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert "non-finite loss nan; update skipped" in error and "the weights are no longer finite" in error
    assert "nothing finite was saved" in error
    assert not (tmp_path / "best").exists() and not (tmp_path / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
def test_finished_run_is_kept_unless_overwritten_and_resumed_only_with_its_settings(tmp_path, capsys):
    from accelerate.state import AcceleratorState

    def fresh(**settings):
        AcceleratorState._reset_state(reset_partial_state=True)
        return train(SFTConfig(output_dir=str(tmp_path), **{**QUICK, **settings}))

    first = fresh()
    with pytest.raises(RunDirectoryError, match="already holds a run .*--resume .*--overwrite"):
        fresh(seed=7)
    assert json.loads((tmp_path / "summary.json").read_text()) == first

    with pytest.raises(RunDirectoryError) as refused:
        fresh(resume=True, lr=5e-3, seed=7)
    assert "lr: 0.002 in the run, 0.005 now" in str(refused.value) and "seed: 42 in the run, 7 now" in str(refused.value)

    os.replace(tmp_path / "last", tmp_path / ".last.old")  # killed between the two renames of a checkpoint swap
    (tmp_path / ".best.tmp-999999").mkdir()  # a killed writer's scratch
    resumed = fresh(resume=True, max_steps=3)
    assert resumed["steps"] == 3 and "resume: max_steps changed from 2 to 3" in capsys.readouterr().out
    assert not (tmp_path / ".best.tmp-999999").exists()

    (tmp_path / "stale.txt").write_text("not the run's: kept")
    replaced = fresh(overwrite=True, seed=7)
    assert replaced["steps"] == 2 and (tmp_path / "stale.txt").exists()
    assert json.loads((tmp_path / "last" / "trainer_state.json").read_text())["config"]["seed"] == 7


def test_rl_resume_of_an_adalora_run_keeps_its_length(tmp_path):
    from todrl.adapters import AdapterConfig
    from todrl.checkpoint import STATE_FILE
    from todrl.run_directory import check_resumed_settings

    started = RLConfig(output_dir=str(tmp_path), episodes=16, adapter=AdapterConfig(type="adalora", target_r=2, init_r=4))
    (tmp_path / "last").mkdir()
    from dataclasses import asdict

    (tmp_path / "last" / STATE_FILE).write_text(json.dumps({"config": asdict(started)}, default=str))
    longer = RLConfig(output_dir=str(tmp_path), episodes=32, resume=True, adapter=started.adapter)
    with pytest.raises(RunDirectoryError, match="rank schedule is laid out over the run's length"):
        check_resumed_settings(tmp_path, longer)
    check_resumed_settings(tmp_path, RLConfig(output_dir=str(tmp_path), episodes=16, eval_every=2, resume=True,
                                              adapter=started.adapter))
