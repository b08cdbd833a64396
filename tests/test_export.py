"""Portable checkpoints: a moved run still loads, and `python -m todrl.export` makes directories plain libraries load."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
import yaml
from huggingface_hub import ModelCard

from todrl.adapters import AdapterConfig
from todrl.checkpoint import save_checkpoint
from todrl.config import save_config
from todrl.export import ExportConfig, export, main
from todrl.format import build_examples
from todrl.model_card import RunRecord, hub_origin
from todrl.models import ModelLoadError, load_merged, load_policy
from todrl.sft import SFTConfig, policy_for_run

SCORES = {"checkpoint": "runs/sft/x/best", "turns": 10, "standard": {"inform": 40.0, "success": 20.5, "bleu": 15.1}}


def sources(count: int = 3) -> list[str]:
    train, _ = SFTConfig().load_train_dev()
    return [e.source for e in build_examples(train)[:count]]


@pytest.fixture(scope="module")
def moved_run(tmp_path_factory) -> Path:
    """A LoRA SFT run laid out as todrl.sft writes it (base/, best/, config, summary, test scores), then moved."""
    out = tmp_path_factory.mktemp("runs") / "sft"
    cfg = SFTConfig(output_dir=str(out), vocab_size=300, adapter=AdapterConfig(type="lora"))
    model, tokenizer = policy_for_run(cfg, build_examples(cfg.load_train_dev()[0])[:8], out, total_steps=10)
    torch.manual_seed(0)
    with torch.no_grad():  # an adapter far from zero, so that dropping or misplacing it changes the outputs
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.3)
    save_checkpoint(out / "best", model, tokenizer, {"step": 1, "config": asdict(cfg)})
    save_config(cfg, out / "config.yaml")
    (out / "summary.json").write_text(json.dumps({"best_dev_loss": 1.23, "steps": 1}))
    (out / "test_scores.json").write_text(json.dumps(SCORES))
    moved = tmp_path_factory.mktemp("elsewhere") / "shared_run"
    shutil.move(out, moved)
    return moved


def greedy(model, tokenizer, texts: list[str]) -> list[list[int]]:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    return model.eval().generate(**batch, max_new_tokens=8, do_sample=False).tolist()


def test_a_moved_run_loads_its_adapter_onto_its_own_base(moved_run):
    assert json.loads((moved_run / "best" / "adapter_config.json").read_text())["base_model_name_or_path"] == "../base"
    policy, tokenizer = load_policy(moved_run / "best")
    base, _ = load_policy(moved_run / "base")
    with torch.no_grad():
        policy.disable_adapter_layers()
        assert greedy(policy, tokenizer, sources()) == greedy(base, tokenizer, sources())


def test_a_checkpoint_taken_out_of_its_run_says_how_to_share_it(moved_run, tmp_path):
    shutil.copytree(moved_run / "best", tmp_path / "best")
    with pytest.raises(ModelLoadError, match=r"its base '\.\./base' is not at .*todrl\.export"):
        load_policy(tmp_path / "best")


@pytest.fixture(scope="module")
def exports(moved_run, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("exports")
    main(["--checkpoint", str(moved_run), "--output", str(root / "merged"), "--merge"])
    export(ExportConfig(checkpoint=str(moved_run / "best"), output=str(root / "adapter")))
    return {"merged": root / "merged", "adapter": root / "adapter"}


PLAIN_LOAD = textwrap.dedent("""
    import json, sys
    from peft import PeftModel
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    merged, adapter, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    models = {"merged": AutoModelForSeq2SeqLM.from_pretrained(merged),
              "adapter": PeftModel.from_pretrained(AutoModelForSeq2SeqLM.from_pretrained(f"{adapter}/base"), adapter)}
    out = {}
    for name, model in models.items():
        batch = AutoTokenizer.from_pretrained(merged if name == "merged" else adapter)(texts, return_tensors="pt", padding=True)
        out[name] = model.eval().generate(**batch, max_new_tokens=8, do_sample=False).tolist()
    out["todrl_imported"] = any(m.split(".")[0] == "todrl" for m in sys.modules)
    print(json.dumps(out))
""")


@pytest.mark.slow  # a fresh interpreter importing torch, transformers and peft
def test_exports_load_in_plain_transformers_and_peft_and_decode_as_todrl_does(moved_run, exports, tmp_path):
    texts = sources()
    done = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(exports["merged"]), str(exports["adapter"]), json.dumps(texts)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    plain = json.loads(done.stdout.strip().splitlines()[-1])
    assert plain.pop("todrl_imported") is False
    merged, tokenizer = load_merged(moved_run / "best")
    expected = greedy(merged, tokenizer, texts)
    assert plain == {"merged": expected, "adapter": expected}
    base, _ = load_policy(moved_run / "base")
    assert greedy(base, tokenizer, texts) != expected  # the adapter is really in both exports
    assert not (exports["merged"] / "adapter_config.json").exists()
    for directory in exports.values():
        assert not {"trainer_state.json", "optimizer.pt"} & {p.name for p in directory.rglob("*")}


def test_model_cards_carry_hub_metadata_and_the_runs_record(exports):
    cards = {name: ModelCard.load(path / "README.md") for name, path in exports.items()}
    assert cards["merged"].data.library_name == "transformers" and cards["adapter"].data.library_name == "peft"
    for card in cards.values():
        assert {"todrl", "task-oriented-dialogue", "multiwoz21"} <= set(card.data.tags)
        assert card.data.base_model is None  # a tiny preset: no Hub model to name, and the Hub rejects a local path
        assert "`python -m todrl.sft --config config.yaml`" in card.text
        assert "| inform | 40.0 |" in card.text and "| best_dev_loss | 1.23 |" in card.text
        assert "| dataset | multiwoz21 |" in card.text and "vocab_size: 300" in card.text
    assert "--merge`" in cards["merged"].text and 'from_pretrained(f"{where}/base")' in cards["adapter"].text


def test_the_hub_origin_is_followed_through_local_runs(tmp_path):
    (tmp_path / "sft" / "best").mkdir(parents=True)
    (tmp_path / "sft" / "config.yaml").write_text(yaml.safe_dump({"model": "google/flan-t5-base"}))
    assert hub_origin({"model": str(tmp_path / "sft")}) == "google/flan-t5-base"
    assert hub_origin({"model": str(tmp_path / "sft" / "best")}) == "google/flan-t5-base"  # a checkpoint of that run
    assert hub_origin({"model": "tiny"}) is None
    assert hub_origin({"model": "runs/sft/gone"}) is None  # a run path that no longer exists is no Hub id


def test_bad_input_is_named(moved_run, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    for argv, message in [(["--checkpoint", str(tmp_path / "none"), "--output", str(tmp_path / "o")], "no such directory"),
                          (["--checkpoint", str(moved_run), "--output", str(tmp_path / "full")], "not an empty directory")]:
        with pytest.raises(SystemExit, match=message):
            main(argv)
    damaged = tmp_path / "run"
    shutil.copytree(moved_run, damaged)
    (damaged / "summary.json").write_text("{")
    with pytest.raises(ValueError, match=r"summary\.json: cannot be read"):
        RunRecord.of(damaged / "best")
