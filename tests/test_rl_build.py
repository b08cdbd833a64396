"""What an RL run holds and starts from: no model copies with adapters, the reference stays the start, episode order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from accelerate import Accelerator

from todrl.adapters import AdapterConfig, apply_adapter
from todrl.checkpoint import save_checkpoint
from todrl.config import parse_config
from todrl.models import build_tiny, load_policy
from todrl.rl.build import assemble, build_policy, episode_indices, sft_checkpoint, weight_bytes
from todrl.rl.rollout import score
from todrl.rl.config import RLConfig

TEXTS = ["i need a cheap hotel in the east", "the phone number is [value_phone] .", "book a taxi at 17:15"] * 10
ROOT = Path(__file__).resolve().parents[1]


def tiny_policy(adapter: str):
    model, tokenizer = build_tiny("tiny", TEXTS, ["<sos_b>", "<eos_b>"], vocab_size=80)
    start_bytes = weight_bytes(model)
    return apply_adapter(model, AdapterConfig(type=adapter), total_steps=100), tokenizer, start_bytes


@pytest.mark.parametrize("algo", ["ppo", "nlpo"])
def test_adapters_hold_no_model_copy(algo):
    policy, _, start_bytes = tiny_policy("lora")
    adapter_bytes = sum(p.numel() * p.element_size() for p in policy.parameters() if p.requires_grad)
    models = assemble(policy, None, algo, torch.device("cpu"))
    head_bytes = weight_bytes(models.agent.value_head)
    assert models.policy_bytes == start_bytes + adapter_bytes
    snapshot = adapter_bytes if algo == "nlpo" else 0
    assert models.held_bytes == models.policy_bytes + snapshot + head_bytes
    assert models.reference.copy is None and (models.mask_policy is None or models.mask_policy.copy is None)


def test_full_fine_tuning_holds_a_frozen_reference_and_mask_copy():
    policy, _, start_bytes = tiny_policy("full")
    models = assemble(policy, None, "nlpo", torch.device("cpu"))
    assert models.held_bytes == 3 * start_bytes + weight_bytes(models.agent.value_head)
    assert not any(p.requires_grad for p in models.reference.copy.parameters())


@pytest.mark.parametrize("adapter", ["lora", "full"])
def test_reference_stays_the_starting_policy(adapter):
    policy, tokenizer, _ = tiny_policy(adapter)
    models = assemble(policy, None, "ppo", torch.device("cpu"))
    batch = tokenizer(["i need a cheap hotel"], return_tensors="pt")
    response = torch.tensor([[5, 6, 7, tokenizer.eos_token_id]])
    before = models.reference.log_probs(batch.input_ids, batch.attention_mask, response, torch.ones_like(response))
    with torch.no_grad():
        for param in policy.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param))
    after = models.reference.log_probs(batch.input_ids, batch.attention_mask, response, torch.ones_like(response))
    policy_now, _ = models.agent(batch.input_ids, batch.attention_mask, response, torch.ones_like(response))
    assert torch.allclose(before, after)
    assert not torch.allclose(policy_now.log_softmax(-1).gather(-1, response[..., None]).squeeze(-1), after)


def test_sft_checkpoint_prefers_best_then_last_and_explains_a_missing_default(tmp_path, monkeypatch):
    run = tmp_path / "sft"
    (run / "last").mkdir(parents=True)
    assert sft_checkpoint(str(run)) == str(run / "last")
    (run / "best").mkdir()
    assert sft_checkpoint(str(run)) == str(run / "best")
    assert sft_checkpoint(str(run / "last")) == str(run / "last")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m todrl.sft"):
        sft_checkpoint(RLConfig.model)


def test_episodes_cover_every_context_once_per_pass_split_across_processes():
    size, per_process, processes = 10, 2, 2
    first_pass = [i for it in range(3) for rank in range(processes)
                  for i in episode_indices(it, size, per_process, processes, rank, 0)]
    assert len(first_pass) == 12 and sorted(first_pass[:10]) == list(range(10))
    assert episode_indices(0, size, per_process, processes, 0, 0) != episode_indices(0, size, per_process, processes, 1, 0)
    assert episode_indices(5, size, per_process, processes, 1, 0) == episode_indices(5, size, per_process, processes, 1, 0)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("rl_*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    cfg = parse_config(RLConfig, ["--config", str(path)])
    assert cfg.output_dir.startswith("runs/rl/")


@pytest.mark.usefixtures("fresh_accelerator_state")
def test_an_sft_adapter_is_merged_so_the_reference_is_the_sft_policy(tmp_path):
    base, tokenizer = build_tiny("tiny", TEXTS, ["<sos_b>", "<eos_b>"], vocab_size=80)
    save_checkpoint(tmp_path / "sft" / "base", base, tokenizer, {})  # as todrl.sft does for adapter runs
    sft = apply_adapter(base, AdapterConfig(type="lora"), total_steps=10)
    with torch.no_grad():
        for param in sft.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.5)
    sft.peft_config["default"].base_model_name_or_path = str(tmp_path / "sft" / "base")
    sft.save_pretrained(tmp_path / "sft" / "best")
    tokenizer.save_pretrained(tmp_path / "sft" / "best")

    cfg = RLConfig(model=str(tmp_path / "sft"), output_dir=str(tmp_path / "rl"))
    policy, _, _ = build_policy(cfg, tmp_path / "rl", total_steps=10, accelerator=Accelerator(cpu=True))
    models = assemble(policy, None, "ppo", torch.device("cpu"))
    batch = tokenizer(["i need a cheap hotel"], return_tensors="pt")
    response = torch.tensor([[5, 6, 7, tokenizer.eos_token_id]])
    ones = torch.ones_like(response)
    reloaded, _ = load_policy(tmp_path / "sft" / "best")
    with torch.no_grad():
        sft_logits, _ = score(reloaded.eval(), batch.input_ids, batch.attention_mask, response, ones, with_hidden=False)
    expected = sft_logits.log_softmax(-1).gather(-1, response[..., None]).squeeze(-1)
    assert torch.allclose(models.reference.log_probs(batch.input_ids, batch.attention_mask, response, ones), expected, atol=1e-5)
    assert (tmp_path / "rl" / "base" / "config.json").is_file()
