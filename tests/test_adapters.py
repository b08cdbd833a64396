"""Adapters on a tiny random T5: config checks, parameter counts, training, rank budget, checkpoints."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from todrl.adapters import (
    AdapterConfig,
    adapter_ranks,
    after_optimizer_step,
    apply_adapter,
    default_target_modules,
    orthogonality_loss,
    trainable_parameters,
)

ROOT = Path(__file__).resolve().parents[1]
GATED_TARGETS = ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]


def tiny_t5(seed: int = 0, feed_forward_proj: str = "gated-gelu") -> T5ForConditionalGeneration:
    """Random tiny T5; the same seed gives the same weights (checkpoints reload onto it)."""
    torch.manual_seed(seed)
    config = T5Config(
        d_model=64, d_ff=128, num_layers=2, num_decoder_layers=2, num_heads=4, d_kv=16, vocab_size=200,
        feed_forward_proj=feed_forward_proj, dropout_rate=0.0, decoder_start_token_id=0, pad_token_id=0,
        eos_token_id=1,
    )
    return T5ForConditionalGeneration(config)


def random_batch(seed: int = 1, size: int = 4) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "input_ids": torch.randint(2, 200, (size, 12), generator=generator),
        "labels": torch.randint(2, 200, (size, 8), generator=generator),
    }


def train(model: nn.Module, steps: int, batch: dict[str, torch.Tensor], lr: float = 1e-2, first_step: int = 1) -> None:
    """The loop the SFT/RL code runs: backward, step, after_optimizer_step, zero_grad."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for step in range(first_step, first_step + steps):
        model(**batch).loss.backward()
        optimizer.step()
        after_optimizer_step(model, step, lambda: model(**batch).loss)
        optimizer.zero_grad()


def adapted(adapter_type: str, total_steps: int = 40, seed: int = 0, **overrides) -> nn.Module:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return apply_adapter(tiny_t5(seed), AdapterConfig(type=adapter_type, **overrides), total_steps=total_steps)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"type": "prefix"}, "adapter type 'prefix' is not one of full, lora, adalora, sucg"),
        ({"r": 0}, "r must be >= 1"),
        ({"lora_dropout": 1.0}, "lora_dropout must be in"),
        ({"target_modules": []}, "non-empty list"),
        ({"target_modules": "q"}, "non-empty list"),
        ({"init_r": 4, "target_r": 8}, "target_r <= init_r"),
        ({"tinit": 1.5}, "tinit must be a fraction of the steps in \\[0, 1\\) or a whole number of steps, got 1.5"),
        ({"tfinal": -1}, "tfinal must be a fraction"),
        ({"tinit": "10"}, "tinit must be a fraction"),
        ({"delta_t": 0}, "delta_t must be >= 1"),
        ({"beta1": 1.0}, "beta1 must be in"),
        ({"orth_reg_weight": -0.1}, "orth_reg_weight must be >= 0"),
        ({"sucg_repeats": 0}, "sucg_repeats must be >= 1"),
        ({"sucg_every": "epoch"}, "sucg_every 'epoch' is not one of allocation, step"),
    ],
)
def test_bad_config_is_rejected_with_its_field(overrides, message):
    with pytest.raises(ValueError, match=message):
        AdapterConfig(**overrides)


def test_schedule_accepts_steps_or_fractions_and_needs_a_budget_phase():
    assert AdapterConfig(tinit=0.1, tfinal=5).schedule_steps(100) == (10, 5)
    assert AdapterConfig(tinit=0, tfinal=12.0).schedule_steps(100) == (0, 12)
    with pytest.raises(ValueError, match=r"tinit \(6 steps\) \+ tfinal \(4 steps\) must be less than total_steps \(10\)"):
        adapted("adalora", total_steps=10, tinit=6, tfinal=4)
    with pytest.raises(ValueError, match="total_steps must be the number of optimizer steps"):
        adapted("sucg", total_steps=0)


def test_default_targets_follow_the_feed_forward_of_the_model():
    assert default_target_modules(tiny_t5()) == GATED_TARGETS
    assert default_target_modules(tiny_t5(feed_forward_proj="relu")) == ["q", "k", "v", "o", "wi", "wo"]
    with pytest.raises(ValueError, match="no default target modules for model type None"):
        default_target_modules(nn.Linear(2, 2))


def test_a_target_matching_no_linear_layer_is_an_error():
    """PEFT would silently skip `wi` on a gated T5 and train only the other targets."""
    with pytest.raises(ValueError, match=r"target module 'wi' matches no linear layer of T5ForConditionalGeneration.*wi_0, wi_1"):
        adapted("lora", target_modules=["q", "wi"])
    with pytest.raises(ValueError, match="'relative_attention_bias' matches no linear layer"):
        adapted("adalora", target_modules=["relative_attention_bias"])


def _targeted_shapes(model: nn.Module) -> list[tuple[int, int]]:
    return [
        (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and name.rsplit(".", 1)[-1] in GATED_TARGETS
    ]


def test_trainable_parameter_counts():
    base = tiny_t5()
    shapes = _targeted_shapes(base)
    assert len(shapes) == 2 * 7 + 2 * 11  # encoder blocks: 4 attention + 3 FFN; decoder blocks add 4 cross-attention
    assert trainable_parameters(adapted("full")) == sum(p.numel() for p in base.parameters())
    assert trainable_parameters(adapted("lora", r=4)) == sum(4 * (i + o) for i, o in shapes)
    expected_svd = sum(6 * (i + o) + 6 for i, o in shapes)  # P, Q and the singular values of each triplet
    assert trainable_parameters(adapted("adalora", init_r=6, target_r=2)) == expected_svd
    assert trainable_parameters(adapted("sucg", init_r=6, target_r=2)) == expected_svd


@pytest.mark.parametrize("adapter_type", ["full", "lora", "adalora", "sucg"])
def test_every_trainable_parameter_changes_and_the_base_stays_frozen(adapter_type):
    model = adapted(adapter_type, total_steps=100)  # tinit 10 steps: nothing is pruned in the 3 steps run
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train(model, steps=3, batch=random_batch())
    for name, param in model.named_parameters():
        changed = not torch.equal(before[name], param)
        assert changed == param.requires_grad, f"{name}: changed={changed}, trainable={param.requires_grad}"


@pytest.mark.slow
@pytest.mark.parametrize("adapter_type", ["adalora", "sucg"])
def test_rank_budget_reaches_target_r(adapter_type):
    model = adapted(adapter_type, total_steps=30, init_r=6, target_r=3, delta_t=5, tinit=3, tfinal=5)
    assert set(adapter_ranks(model).values()) == {6}
    batch = random_batch()
    train(model, steps=12, batch=batch)
    midway = adapter_ranks(model)
    assert 3 * len(midway) < sum(midway.values()) < 6 * len(midway)
    train(model, steps=18, batch=batch, first_step=13)
    ranks = adapter_ranks(model)
    assert len(ranks) == 36 and sum(ranks.values()) == 3 * len(ranks)
    assert len(set(ranks.values())) > 1, "allocation should be uneven across modules"
    for name, module in model.base_model.model.named_modules():
        if name in ranks:
            assert int((module.lora_E["default"] != 0).sum()) == ranks[name], name


@pytest.fixture(scope="module")
def sucg_checkpoint(tmp_path_factory) -> tuple[nn.Module, Path]:
    """A SUCG model trained through its final allocation, and its save_pretrained folder."""
    model = adapted("sucg", total_steps=20, init_r=6, target_r=3, delta_t=4, tinit=2, tfinal=4)
    train(model, steps=20, batch=random_batch())
    path = tmp_path_factory.mktemp("sucg")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PEFT mistakes modules pruned to rank 0 for unsharded ZeRO-3 tensors
        model.save_pretrained(path)
    return model, path


@pytest.mark.slow
def test_save_pretrained_keeps_the_final_rank_pattern(sucg_checkpoint):
    model, path = sucg_checkpoint
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = PeftModel.from_pretrained(tiny_t5(), path)
    ranks = adapter_ranks(model)
    assert sum(ranks.values()) == 3 * len(ranks) and adapter_ranks(loaded) == ranks
    for name, module in loaded.base_model.model.named_modules():
        if name in ranks:
            assert module.lora_E["default"].shape[0] == ranks[name]
    model.eval()
    loaded.eval()
    # no labels: PEFT's AdaLoRA loaded for inference fails to add its regularizer to a loss
    batch = random_batch()
    inputs = {"input_ids": batch["input_ids"], "decoder_input_ids": batch["labels"]}
    with torch.no_grad():
        assert torch.allclose(model(**inputs).logits, loaded(**inputs).logits, atol=1e-5)


def _plot_ranks_script():
    spec = importlib.util.spec_from_file_location("plot_ranks", ROOT / "scripts" / "plot_ranks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("plot_ranks", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_plot_ranks_draws_every_module_of_the_checkpoint(sucg_checkpoint, tmp_path):
    script = _plot_ranks_script()
    _, path = sucg_checkpoint
    ranks = script.load_ranks(path)
    assert ranks == adapter_ranks(sucg_checkpoint[0])
    cells = {script.locate(p) for p in ranks}
    assert len(cells) == 36
    assert script.Cell("decoder", 1, "EncDecAttention.v") in cells
    assert script.locate("model.layers.3.mlp.down_proj") == script.Cell("", 3, "mlp.down_proj")
    out = tmp_path / "ranks.png"
    script.main([str(path), "--out", str(out)])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_ranks_explains_a_checkpoint_without_rank_pattern(tmp_path):
    adapted("lora").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="has no rank_pattern.*peft_type here: LORA"):
        _plot_ranks_script().load_ranks(tmp_path)
    with pytest.raises(FileNotFoundError, match="adapter_config.json not found"):
        _plot_ranks_script().load_ranks(tmp_path / "missing")


@pytest.mark.parametrize("adapter_type", ["adalora", "sucg"])
def test_orthogonality_loss_is_what_peft_adds_with_labels(adapter_type):
    model = adapted(adapter_type)
    model.eval()
    batch = random_batch()
    train(model, steps=1, batch=batch)  # move P and Q away from their initialization
    outputs = model(**batch)
    cross_entropy = nn.functional.cross_entropy(outputs.logits.flatten(0, 1), batch["labels"].flatten())
    regularizer = orthogonality_loss(model)
    assert regularizer.item() > 0.1
    assert torch.allclose(cross_entropy + regularizer, outputs.loss, atol=1e-5)
    assert orthogonality_loss(adapted("lora")).item() == 0.0


def test_after_optimizer_step_rejects_misuse():
    model = adapted("adalora", total_steps=10)
    batch = random_batch()
    model(**batch).loss.backward()
    with pytest.raises(ValueError, match=r"global_step 0 is outside 1\.\.10"):
        after_optimizer_step(model, 0)
    with pytest.raises(ValueError, match=r"global_step 11 is outside 1\.\.10"):
        after_optimizer_step(model, 11)
    model.zero_grad()
    with pytest.raises(RuntimeError, match=r"step 1: .*lora_\w+\.default has no gradient"):
        after_optimizer_step(model, 1)


def test_sucg_needs_the_loss_closure_on_scoring_steps():
    model = adapted("sucg", total_steps=20, tinit=0, tfinal=0, delta_t=2)
    model(**random_batch()).loss.backward()
    after_optimizer_step(model, 1)  # not an allocation step: no extra passes, no closure needed
    with pytest.raises(ValueError, match="pass loss_closure"):
        after_optimizer_step(model, 2)
