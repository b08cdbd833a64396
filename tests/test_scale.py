"""Precision and gradient checkpointing: what runs at the sizes users train, checked on the tiny presets."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

from todrl.batching import Collator, tokenize_examples
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.format import build_examples, format_tokens
from todrl.models import build_tiny, enable_gradient_checkpointing, set_precision

EXAMPLES = build_examples(load_multiwoz(SAMPLE_PATH, "val"))[:8]
TEXTS = [t for e in EXAMPLES for t in (e.source, e.target)]


def tiny(preset: str):
    torch.manual_seed(0)
    return build_tiny(preset, TEXTS, format_tokens(TEXTS), vocab_size=300)


def test_fp16_t5_is_refused_and_bf16_casts_every_weight():
    model, _ = tiny("tiny")
    with pytest.raises(ValueError, match="t5 overflows in float16"):
        set_precision(model, "fp16")
    assert {p.dtype for p in set_precision(model, "bf16").parameters()} == {torch.bfloat16}
    llama, _ = tiny("tiny-llama")
    assert {p.dtype for p in set_precision(llama, "fp16").parameters()} == {torch.float16}


@pytest.mark.parametrize("preset", ["tiny", "tiny-llama"])
def test_gradient_checkpointing_gives_the_same_gradients_with_an_adapter(preset):
    from peft import LoraConfig, get_peft_model

    grads = []
    for checkpointed in (False, True):
        model, tokenizer = tiny(preset)
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if checkpointed:
            enable_gradient_checkpointing(model)
        model = get_peft_model(model, LoraConfig(r=4, target_modules=["q", "v"] if preset == "tiny" else ["q_proj", "v_proj"],
                                                 init_lora_weights=False))
        seq2seq = preset == "tiny"
        rows = tokenize_examples(EXAMPLES, tokenizer, seq2seq=seq2seq, max_source_length=64, max_target_length=32)
        batch = Collator(tokenizer.pad_token_id, seq2seq=seq2seq)([rows[i] for i in range(len(rows))])
        model.train()
        model(**batch).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
    assert grads[0].keys() == grads[1].keys() and grads[0]
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
@pytest.mark.parametrize("preset", ["tiny", "tiny-llama"])
def test_bf16_checkpointed_adapter_runs_train_save_and_reload_in_sft_and_rl(tmp_path, preset):
    from accelerate.state import AcceleratorState
    from peft import PeftModel

    from todrl.adapters import AdapterConfig
    from todrl.rl.config import RLConfig
    from todrl.rl.trainer import train as rl
    from todrl.sft import SFTConfig, train as sft

    scale = dict(precision="bf16", gradient_checkpointing=True)
    sft(SFTConfig(model=preset, output_dir=str(tmp_path / "sft"), max_steps=2, batch_size=8, vocab_size=400,
                  max_target_length=48, adapter=AdapterConfig(type="lora"), **scale))
    auto = AutoModelForSeq2SeqLM if preset == "tiny" else AutoModelForCausalLM
    base = auto.from_pretrained(tmp_path / "sft" / "base", torch_dtype="auto")
    assert base.dtype == torch.bfloat16
    adapter = PeftModel.from_pretrained(base, tmp_path / "sft" / "best")
    assert {p.dtype for n, p in adapter.named_parameters() if "lora_" in n} == {torch.float32}

    AcceleratorState._reset_state(reset_partial_state=True)
    summary = rl(RLConfig(model=str(tmp_path / "sft"), output_dir=str(tmp_path / "rl"), episodes=8, batch_size=8,
                          minibatch_size=4, ppo_epochs=1, max_new_tokens=12, eval_dialogues=1, algo="ppo", **scale))
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert summary["iterations"] == 1 and rows[-1]["ppo/skipped_updates"] == 0
    trained = torch.load(tmp_path / "rl" / "last" / "optimizer.pt", weights_only=False)["trainable"]
    assert any(t.abs().sum() > 0 for n, t in trained.items() if "lora_B" in n)  # the update reached the adapter
    assert trained[next(n for n in trained if "value_head" in n)].dtype == torch.float32


def test_a_quantized_base_needs_an_adapter():
    from todrl.adapters import AdapterConfig
    from todrl.rl.config import RLConfig
    from todrl.sft import SFTConfig

    with pytest.raises(ValueError, match="quantize 4bit needs an adapter"):
        SFTConfig(quantize="4bit")  # SFT's default adapter is full fine-tuning
    with pytest.raises(ValueError, match="quantize 8bit needs an adapter"):
        RLConfig(quantize="8bit", adapter=AdapterConfig(type="full"))


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
@pytest.mark.parametrize(("preset", "quantize"), [("tiny", "4bit"), ("tiny-llama", "8bit")])
def test_adapters_train_over_a_quantized_base_in_sft_and_rl(tmp_path, preset, quantize):
    from accelerate.state import AcceleratorState
    from peft import PeftModel

    from todrl.adapters import AdapterConfig
    from todrl.models import load_policy
    from todrl.rl.config import RLConfig
    from todrl.rl.trainer import train as rl
    from todrl.sft import SFTConfig, train as sft

    sft(SFTConfig(model=preset, output_dir=str(tmp_path / "sft"), max_steps=2, batch_size=8, vocab_size=400,
                  max_target_length=48, adapter=AdapterConfig(type="lora"), quantize=quantize, precision="bf16"))
    model, _ = load_policy(tmp_path / "sft" / "best")  # the adapter loads onto the saved, unquantized base
    assert isinstance(model, PeftModel)
    linear = next(m for n, m in model.named_modules() if n.endswith(("SelfAttention.q", "self_attn.q_proj")))
    assert type(linear.base_layer).__name__ == "Linear"

    AcceleratorState._reset_state(reset_partial_state=True)
    summary = rl(RLConfig(model=str(tmp_path / "sft"), output_dir=str(tmp_path / "rl"), episodes=8, batch_size=8,
                          minibatch_size=4, ppo_epochs=1, max_new_tokens=12, eval_dialogues=1, algo="nlpo",
                          quantize=quantize, precision="bf16"))
    assert summary["iterations"] == 1
    trained = torch.load(tmp_path / "rl" / "last" / "optimizer.pt", weights_only=False)["trainable"]
    assert any(t.abs().sum() > 0 for n, t in trained.items() if "lora_B" in n)


def test_peak_memory_of_a_child_process_is_its_own():
    """A run started by a large process (a benchmark holding a model) reports its own peak, not the parent's."""
    import subprocess
    import sys

    from todrl.summary import peak_memory_mb

    held = bytearray(1024**3)
    held[::4096] = b"\x01" * len(held[::4096])  # touch every page: the parent's resident set grows by 1 GiB
    child = subprocess.run([sys.executable, "-c", "from todrl.summary import peak_memory_mb; print(peak_memory_mb())"],
                           capture_output=True, text=True, check=True)
    assert float(child.stdout) < peak_memory_mb() - 900
    del held
