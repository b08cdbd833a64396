"""End-to-end runs of `python -m todrl.sft` on tiny settings: they check that something was learned and saved."""

import json

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from conftest import require_data
from todrl.adapters import AdapterConfig
from todrl.checkpoint import load_state
from todrl.run_directory import RunDirectoryError
from todrl.sft import SFTConfig, train

QUICK = dict(epochs=1, batch_size=8, vocab_size=600)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_accelerator_state")]


def test_default_run_writes_loadable_checkpoints(tmp_path):
    summary = train(SFTConfig(output_dir=str(tmp_path), max_steps=6, **QUICK))
    best = tmp_path / "best"
    model = AutoModelForSeq2SeqLM.from_pretrained(best)
    tokenizer = AutoTokenizer.from_pretrained(best)
    assert "<sos_b>" in tokenizer.get_vocab() and model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert summary["steps"] == 6 and summary["trainable_params"] == summary["total_params"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["best_dev_loss"] == pytest.approx(summary["best_dev_loss"])
    assert list(tmp_path.glob("events.out.tfevents*")) or list(tmp_path.rglob("events.out.tfevents*"))


def test_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    import todrl.sft

    settings = dict(max_steps=4, eval_every=2, **QUICK)
    train(SFTConfig(output_dir=str(tmp_path / "straight"), **settings))

    real_step = todrl.sft.after_optimizer_step

    def killed_in_step_three(model, step, closure=None):
        if step == 3:
            raise KeyboardInterrupt
        real_step(model, step, closure)

    monkeypatch.setattr(todrl.sft, "after_optimizer_step", killed_in_step_three)
    with pytest.raises(KeyboardInterrupt):
        train(SFTConfig(output_dir=str(tmp_path / "split"), **settings))
    monkeypatch.setattr(todrl.sft, "after_optimizer_step", real_step)
    assert load_state(tmp_path / "split" / "last")[0]["step"] == 2
    resumed = train(SFTConfig(output_dir=str(tmp_path / "split"), resume=True, **settings))
    assert resumed["steps"] == 4
    a = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "straight" / "last").state_dict()
    b = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "split" / "last").state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(RunDirectoryError, match="no run at"):
        train(SFTConfig(output_dir=str(tmp_path / "none"), resume=True))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RunDirectoryError, match="no checkpoint at"):
        train(SFTConfig(output_dir=str(tmp_path / "empty"), resume=True))


def test_lora_run_saves_an_adapter_that_peft_loads(tmp_path):
    from peft import PeftModel

    train(SFTConfig(output_dir=str(tmp_path), max_steps=3, adapter=AdapterConfig(type="lora"), **QUICK))
    assert json.loads((tmp_path / "best" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"
    model = PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "base"), tmp_path / "best")
    assert any("lora_A" in name for name, _ in model.named_parameters())


def test_low_resource_multiwoz_config_trains_on_val(tmp_path):
    data = require_data("multiwoz21")
    summary = train(SFTConfig(data_dir=str(data), train_split="val", dev_split="val", dev_dialogues=5,
                              train_fraction=0.01, output_dir=str(tmp_path), max_steps=2, **QUICK))
    assert summary["dev_examples"] > 0 and summary["train_examples"] > 0


def test_hub_models_fail_only_for_want_of_the_hub(tmp_path, monkeypatch, capsys):
    import huggingface_hub.constants

    from test_models import MISSING_HUB_MODEL

    from todrl.sft import main

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", MISSING_HUB_MODEL, "--output-dir", str(tmp_path), "--max-steps", "1"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and error.count("\n") == 1
    assert error.startswith(f"todrl.sft: could not load model '{MISSING_HUB_MODEL}'") and "hub" in error


def test_rl_selects_on_the_dialogues_its_sft_start_held_out():
    from todrl.rl.build import contexts
    from todrl.rl.config import RLConfig

    data = dict(train_split="val", dev_split="val", dev_dialogues=3)
    _, sft_dev = SFTConfig(**data, seed=42).load_train_dev()
    held_out = {d.id for d in sft_dev}
    for seed in (1, 2):
        examples, rl_dev = contexts(RLConfig(**data, seed=seed))
        assert {d.id for d in rl_dev} == held_out
        assert not held_out & {e.dialogue_id for e in examples}
