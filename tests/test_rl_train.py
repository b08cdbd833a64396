"""End-to-end runs of the RL loop on a tiny policy: learning, resume, AdaLoRA, the NaN guard, several processes."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from rewards import RewardConfig

import todrl.rl.trainer as trainer
from todrl.adapters import AdapterConfig
from todrl.batching import Collator, tokenize_examples
from todrl.data import span_vocabulary
from todrl.data.splits import train_dev
from todrl.format import build_examples, format_tokens
from todrl.health import TrainingFailed
from todrl.models import build_tiny, load_policy
from todrl.rl.__main__ import main
from todrl.rl.config import RLConfig
from todrl.rl.trainer import train

ROOT = Path(__file__).resolve().parents[1]

CONTEXTS = 8

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_accelerator_state")]


@pytest.fixture(scope="module")
def sft_policy(tmp_path_factory) -> Path:
    """A tiny T5 briefly fitted to the first training turns of the embedded sample: right often, not always."""
    dialogues, _ = train_dev("multiwoz21", None, "train", "val")
    examples = build_examples(dialogues)[:CONTEXTS]
    texts = [t for e in examples for t in (e.source, e.target)]
    torch.manual_seed(0)
    model, tokenizer = build_tiny("tiny", texts, format_tokens(texts), vocab_size=300)
    rows = tokenize_examples(examples, tokenizer, seq2seq=True, max_source_length=64, max_target_length=48)
    batch = Collator(tokenizer.pad_token_id, seq2seq=True)([rows[i] for i in range(len(rows))])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(20):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = tmp_path_factory.mktemp("sft") / "best"
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path.parent


@pytest.fixture(scope="module")
def causal_policy(tmp_path_factory) -> Path:
    """An untrained tiny Llama: enough to drive the causal code paths end to end."""
    dialogues, _ = train_dev("multiwoz21", None, "train", "val")
    texts = [t for e in build_examples(dialogues)[:CONTEXTS] for t in (e.source, e.target)]
    model, tokenizer = build_tiny("tiny-llama", texts, format_tokens(texts), vocab_size=300)
    path = tmp_path_factory.mktemp("causal")
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def config(sft_policy: Path, out: Path, **overrides) -> RLConfig:
    settings = dict(model=str(sft_policy), output_dir=str(out), max_contexts=CONTEXTS, eval_dialogues=2, batch_size=8,
                    minibatch_size=4, ppo_epochs=2, episodes=16, max_new_tokens=16, max_source_length=64, lr=1e-3,
                    eval_every=0, save_every=1, algo="ppo")
    settings.update(overrides)
    return RLConfig(**settings)


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def trained_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint / "optimizer.pt", weights_only=False)["trainable"]


def test_short_run_raises_task_reward_on_fixed_contexts(sft_policy, tmp_path):
    out = tmp_path / "rl"
    cfg = config(sft_policy, out, batch_size=16, minibatch_size=8, ppo_epochs=4, episodes=12 * 16, max_new_tokens=32,
                 kl_target=None, save_every=100, prepack=True)  # rollouts on packed copies of the frozen base
    summary = train(cfg)
    rewards = [m["env/task_reward"] for m in metrics(out)]
    assert len(rewards) == 12
    assert sum(rewards[-3:]) / 3 > sum(rewards[:3]) / 3 + 0.05, rewards
    # every trainable tensor moved, and the checkpoint is an ordinary PEFT directory on the saved SFT base
    tensors = trained_tensors(out / "last")
    assert tensors and all(t.abs().sum() > 0 for n, t in tensors.items() if "lora_B" in n or "value_head" in n)
    policy, _ = load_policy(out / "last")
    assert policy.peft_config["default"].base_model_name_or_path == "../base"  # the run's base/, seen from last/
    assert summary["iterations"] == 12 and summary["time_split"]["generation"] > 0
    for name in ("objective/kl", "objective/kl_coef", "ppo/pg_loss", "ppo/v_loss", "ppo/entropy", "ppo/clipfrac"):
        assert name in metrics(out)[-1]


def gold_loss(checkpoint: Path, max_length: int) -> float:
    """Cross-entropy of the fixed contexts' gold targets, as transformers computes it from labels."""
    policy, tokenizer = load_policy(checkpoint)
    policy = policy.merge_and_unload() if hasattr(policy, "merge_and_unload") else policy
    examples = build_examples(train_dev("multiwoz21", None, "train", "val")[0])[:CONTEXTS]
    ids, mask = trainer.gold_targets(tokenizer, examples, max_length, "cpu")
    sources = tokenizer([e.source for e in examples], return_tensors="pt", padding=True, truncation=True, max_length=64)
    with torch.no_grad():
        return policy.eval()(**sources, labels=ids.masked_fill(mask == 0, -100)).loss.item()


def test_sft_term_fits_the_gold_targets(sft_policy, tmp_path):
    out = tmp_path / "rl"
    train(config(sft_policy, out, reward="none", sft_coef=1.0, episodes=6 * 8, save_every=100))
    start, end = gold_loss(sft_policy / "best", 16), gold_loss(out / "last", 16)
    logged = [m["ppo/sft_loss"] for m in metrics(out)]
    assert logged[0] == pytest.approx(start, rel=0.2)  # the first iteration's updates start from the SFT policy
    assert end < start - 0.05 and logged[-1] < logged[0]


def test_sft_start_is_evaluated_as_reference_but_never_kept_as_best(sft_policy, tmp_path):
    out = tmp_path / "rl"
    train(config(sft_policy, out, episodes=8))
    summary = train(config(sft_policy, out, eval_every=1, episodes=2 * 8, overwrite=True))  # replaces the first run
    rows = metrics(out)
    assert [row["iteration"] for row in rows] == [0, 1, 2]
    assert rows[0]["eval/task_reward"] == summary["start_eval"]["eval/task_reward"] and "env/task_reward" not in rows[0]
    assert summary["best_iteration"] in (1, 2) and (out / "best").is_dir()


def test_generalization_script_scores_sampled_and_unsampled_contexts(sft_policy, tmp_path, capsys):
    script = load_script("rl_generalization")
    out = tmp_path / "rl"
    train(config(sft_policy, out, episodes=2 * 8, max_contexts=24))
    assert len(script.sampled_contexts(RLConfig(batch_size=8, seed=42), 2, 24, 1)) == 16
    script.main([str(out), "--batch-size", "8"])
    lines = capsys.readouterr().out.splitlines()
    assert "16 sampled, 8 never sampled" in lines[-3]
    for line, name in zip(lines[-2:], ("sampled", "never sampled")):
        start, end, change = map(float, re.search(r"start (\S+) +after RL (\S+) +change (\S+)", line).groups())
        assert line.split("start")[0].strip() == name and change == pytest.approx(end - start, abs=1e-4)
    with pytest.raises(SystemExit, match="missing"):
        script.main([str(tmp_path)])


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def table_rows(output: str) -> dict[str, list[str]]:
    rows = [line.strip("|").split(" | ") for line in output.splitlines() if line.startswith("| ") and "---" not in line]
    return {cells[0].strip(): [c.strip() for c in cells[1:]] for cells in rows[1:]}


def test_perturbation_and_request_scripts_score_rl_checkpoints_beside_controls(sft_policy, tmp_path, capsys):
    out = tmp_path / "rl"
    train(config(sft_policy, out, episodes=8))
    run_config = str(out / "config.yaml")
    load_script("perturbation_baseline").main(["--config", run_config, str(out / "last"), "--scales", "0.3",
                                               "--seeds", "1", "--json", str(tmp_path / "rows.json")])
    rows = table_rows(capsys.readouterr().out)
    assert rows["SFT"][:3] == ["0.000", "0", "0 / 0"]  # KL to SFT, states changed, exact-state flips
    assert float(rows["noise 0.3, seed 1"][0]) > 0 and str(out / "last") in rows
    assert len(json.loads((tmp_path / "rows.json").read_text())) == 3
    load_script("request_coverage").main(["--config", run_config, str(sft_policy / "best")])
    rows = table_rows(capsys.readouterr().out)
    act, response, either = map(int, rows["gold targets"])
    assert max(act, response) <= either and str(sft_policy / "best") in rows
    script = load_script("inform_failures")
    script.main(["--config", run_config, str(sft_policy / "best")])
    cells = table_rows(capsys.readouterr().out)[str(sft_policy / "best")]
    assert len(cells) == 9 and all(0 <= float(c) <= 100 for c in cells[:4])


def test_inform_failures_of_the_gold_targets():
    from todrl.evaluate.generate import read_predictions
    from todrl.rl.evaluation import DevEvaluation

    script = load_script("inform_failures")
    _, dialogues = train_dev("multiwoz21", None, "train", "val")
    evaluation = DevEvaluation(dialogues[:20], "multiwoz21", None, "val", RewardConfig(), span_vocabulary("multiwoz21"),
                               64, 16, 8)
    texts = [e.target for e in evaluation.examples]
    gold_offers, offered, other_turns, offered_elsewhere = script.offer_rates(evaluation, texts)
    assert gold_offers == offered > 0 and other_turns > 0 and offered_elsewhere == 0
    counts = script.failures(evaluation, read_predictions(evaluation.dialogues, texts, evaluation.vocabulary))
    assert counts["informed"] > counts["offered, wrong venues"] + counts["never offered"]
    silent = [text.split("<sos_r>")[0] + "<sos_r> <eos_r>" for text in texts]
    assert script.failures(evaluation, read_predictions(evaluation.dialogues, silent, evaluation.vocabulary))["informed"] < counts["informed"]


def stop_after(monkeypatch, updates: int) -> None:
    """Interrupt the run when PPO is about to update for the (updates + 1)-th time."""
    calls = []
    real_update = trainer.ppo_update

    def interrupted(*args, **kwargs):
        if len(calls) == updates:
            raise KeyboardInterrupt
        calls.append(1)
        return real_update(*args, **kwargs)

    monkeypatch.setattr(trainer, "ppo_update", interrupted)


def test_resume_continues_from_the_same_step(sft_policy, tmp_path, monkeypatch):
    settings = dict(algo="nlpo", mask_sync_every=2, episodes=3 * 8)
    straight = tmp_path / "straight"
    train(config(sft_policy, straight, **settings))

    resumed = tmp_path / "resumed"
    cfg = config(sft_policy, resumed, **settings)
    stop_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        train(cfg)
    monkeypatch.undo()
    assert json.loads((resumed / "last" / "trainer_state.json").read_text())["iteration"] == 2
    train(dataclasses.replace(cfg, resume=True))

    def without_timings(rows):
        return [{k: v for k, v in row.items() if not k.startswith("time/")} for row in rows]

    assert without_timings(metrics(resumed)) == without_timings(metrics(straight))
    expected, got = trained_tensors(straight / "last"), trained_tensors(resumed / "last")
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


@pytest.mark.parametrize("kind", ["adalora", "sucg"])
def test_adalora_allocates_ranks_and_adds_its_regularizer(sft_policy, tmp_path, kind):
    out = tmp_path / kind
    adapter = AdapterConfig(type=kind, init_r=4, target_r=2, tinit=2, tfinal=2, delta_t=2, sucg_repeats=2)
    train(config(sft_policy, out, adapter=adapter, algo="nlpo", mask_sync_every=1, episodes=3 * 8, save_every=100))
    assert all(m["ppo/orth_loss"] > 0 for m in metrics(out))
    pattern = json.loads((out / "last" / "adapter_config.json").read_text())["rank_pattern"]
    ranks = [sum(kept) for kept in pattern.values()]
    assert ranks and min(ranks) < 4 and sum(ranks) <= 2 * len(ranks)


@pytest.mark.parametrize("algo", ["ppo", "nlpo"])
def test_causal_policy_trains_with_either_algorithm(causal_policy, tmp_path, algo):
    out = tmp_path / algo
    train(config(causal_policy, out, algo=algo, episodes=8, max_new_tokens=8))
    row = metrics(out)[0]
    assert row["ppo/skipped_updates"] == 0 and row["env/response_length"] > 0
    assert any(t.abs().sum() > 0 for n, t in trained_tensors(out / "last").items() if "lora_B" in n)
    assert ("nlpo/mask_size" in row) == (algo == "nlpo")


def test_separate_value_model_trains_its_own_weights(sft_policy, tmp_path):
    out = tmp_path / "critic"
    summary = train(config(sft_policy, out, value_model="separate", episodes=8))
    tensors = trained_tensors(out / "last")
    critic = {n: t for n, t in tensors.items() if n.startswith("value_model.") and "lora_B" in n}
    assert critic and all(t.abs().sum() > 0 for t in critic.values())
    assert summary["held_weight_ratio"] > 1.9  # the price of a second model


def test_non_finite_update_is_skipped_and_reported(sft_policy, tmp_path, monkeypatch, capsys):
    real_gae = trainer.gae
    monkeypatch.setattr(trainer, "gae", lambda *a, **k: tuple(torch.full_like(t, float("nan")) for t in real_gae(*a, **k)))
    out = tmp_path / "nan"
    with pytest.raises(TrainingFailed, match="4 of 4 updates were skipped"):  # a run that learned nothing fails
        train(config(sft_policy, out, episodes=8))
    assert metrics(out)[0]["ppo/skipped_updates"] == 2 * 2
    assert "non-finite loss" in capsys.readouterr().err
    tensors = trained_tensors(out / "last")
    assert all(t.abs().sum() == 0 for n, t in tensors.items() if "lora_B" in n or "value_head" in n)


def test_default_run_without_sft_checkpoint_says_what_it_needs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["--reward", "tod"])
    assert exit_info.value.code == 2 and "python -m todrl.sft" in capsys.readouterr().err


def test_settings_that_cannot_work_are_rejected():
    with pytest.raises(ValueError, match="minibatch_size"):
        RLConfig(batch_size=4, minibatch_size=8)
    with pytest.raises(ValueError, match="rank schedule"):
        RLConfig(target_kl=0.1, adapter=AdapterConfig(type="adalora"))
    with pytest.raises(ValueError, match="algo"):
        RLConfig(algo="grpo")
    with pytest.raises(ValueError, match="sft_coef"):
        RLConfig(sft_coef=-1.0)
    with pytest.raises(ValueError, match="request_spans"):
        RLConfig(reward=RewardConfig(request_spans="act"))


def test_two_processes_stay_in_sync(sft_policy, tmp_path):
    """`accelerate launch` with 2 CPU processes: different episodes per process, identical weights after every update,
    with the SFT term on, which runs the policy outside DDP's forward in the same backward as the PPO loss."""
    sft_coef = 1.0
    out = tmp_path / "ddp"
    script = tmp_path / "spy.py"
    script.write_text(textwrap.dedent(f"""
        import os, torch
        import todrl.rl.trainer as trainer
        real_update = trainer.ppo_update
        def spy(agent, *args, **kwargs):
            stats = real_update(agent, *args, **kwargs)
            total = sum(p.detach().double().sum().item() for p in agent.parameters() if p.requires_grad)
            with open(os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"]), "a") as handle:
                handle.write(repr(total) + "\\n")
            return stats
        trainer.ppo_update = spy
        trainer.train(trainer.RLConfig(model={str(sft_policy)!r}, output_dir={str(out)!r}, max_contexts=8, eval_dialogues=1,
                                       batch_size=4, minibatch_size=2, ppo_epochs=2, episodes=16, max_new_tokens=12,
                                       max_source_length=64, save_every=100, sft_coef={sft_coef!r}))
    """))
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", str(script)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0, rank1 = (tmp_path / "rank0").read_text().split(), (tmp_path / "rank1").read_text().split()
    assert len(rank0) == 2 and rank0 == rank1 and rank0[0] != rank0[1]
    assert json.loads((out / "summary.json").read_text())["episodes"] == 16
