"""Sharded training: SFT, then RL from its checkpoint, each as 2 CPU processes under FSDP2 through `accelerate launch`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from todrl.models import is_seq2seq, load_policy

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "accelerate" / "fsdp_cpu.yaml"

pytestmark = pytest.mark.slow


def launch(module: str, *args: str) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file configs/accelerate/fsdp_cpu.yaml -m <module> <args>` on CPUs, as a user runs it."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(CONFIG), "-m", module, *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=240)


def generates(checkpoint: Path) -> bool:
    """Whether a checkpoint loaded in this one plain process, as a user of transformers/PEFT would, decodes tokens."""
    model, tokenizer = load_policy(checkpoint)
    batch = tokenizer(["i need a cheap restaurant in the centre"], return_tensors="pt")
    ids = model.generate(**batch, max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    logits = model(**batch, decoder_input_ids=ids).logits if is_seq2seq(model) else model(input_ids=ids).logits
    return ids.shape[-1] > 1 and bool(torch.isfinite(logits).all())


def test_sft_then_rl_sharded_save_loadable_checkpoints_that_moved(tmp_path):
    """SFT with LoRA, then NLPO with full fine-tuning (its mask policy re-synced from sharded weights every iteration)."""
    sft, rl = tmp_path / "sft", tmp_path / "rl"
    result = launch("todrl.sft", "--output-dir", str(sft), "--adapter.type", "lora", "--max-steps", "2", "--batch-size", "4",
                    "--vocab-size", "400", "--max-source-length", "64", "--max-target-length", "48")
    assert result.returncode == 0, result.stderr[-3000:]
    adapter = load_file(sft / "best" / "adapter_model.safetensors")
    lora_b = [t for name, t in adapter.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)  # LoRA's B starts at zero: every one of them learned
    assert generates(sft / "best")

    result = launch("todrl.rl", "--reward", "tod", "--model", str(sft), "--output-dir", str(rl), "--adapter.type", "full",
                    "--mask-sync-every", "1", "--episodes", "8", "--batch-size", "2", "--minibatch-size", "2",
                    "--ppo-epochs", "1", "--max-new-tokens", "12", "--max-contexts", "8", "--eval-dialogues", "1",
                    "--max-source-length", "64")
    assert result.returncode == 0, result.stderr[-3000:]
    start = load_policy(sft / "best")[0].merge_and_unload().state_dict()
    tuned = load_file(rl / "last" / "model.safetensors")
    assert set(tuned) <= set(start)
    moved = [name for name, tensor in tuned.items() if not torch.equal(tensor, start[name])]
    assert len(moved) > len(tuned) // 2, f"only {len(moved)} of {len(tuned)} tensors changed"
    assert generates(rl / "last")


def test_causal_policy_trains_sharded_with_lora(tmp_path):
    """A Llama-style policy: SFT then PPO, both with LoRA, sharded; the adapters reload on their saved base."""
    sft, rl = tmp_path / "sft", tmp_path / "rl"
    result = launch("todrl.sft", "--model", "tiny-llama", "--output-dir", str(sft), "--adapter.type", "lora",
                    "--max-steps", "2", "--batch-size", "4", "--vocab-size", "400", "--max-source-length", "64",
                    "--max-target-length", "48")
    assert result.returncode == 0, result.stderr[-3000:]
    assert generates(sft / "best")
    result = launch("todrl.rl", "--reward", "tod", "--algo", "ppo", "--model", str(sft), "--output-dir", str(rl),
                    "--episodes", "8", "--batch-size", "2", "--minibatch-size", "2", "--ppo-epochs", "1",
                    "--max-new-tokens", "12", "--max-contexts", "8", "--eval-dialogues", "1", "--max-source-length", "64")
    assert result.returncode == 0, result.stderr[-3000:]
    start, tuned = (load_file(d / "adapter_model.safetensors") for d in (sft / "best", rl / "last"))
    assert set(tuned) == set(start) and any(not torch.equal(tuned[name], start[name]) for name in tuned)
    assert generates(rl / "last")


def test_rank_reallocating_adapters_are_refused_when_sharded(tmp_path):
    result = launch("todrl.sft", "--output-dir", str(tmp_path / "sft"), "--adapter.type", "adalora", "--max-steps", "1")
    assert result.returncode != 0
    assert "adapter 'adalora' cannot be sharded" in result.stderr
