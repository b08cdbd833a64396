"""SUCG importance (seed 000, Eq. 11-13) against hand computations, and its effect on rank allocation."""

from __future__ import annotations

import warnings

import pytest
import torch
from peft import AdaLoraConfig, get_peft_model
from torch import nn

from test_adapters import adapted, random_batch, train
from todrl.adapters import AdapterConfig, adapter_ranks, after_optimizer_step, apply_adapter
from todrl.sucg import SUCGRankAllocator, expected_gradient, sample_coalitions


class OneLinear(nn.Module):
    """y = W x: small enough to write dL/dlambda by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(5, 3, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


def one_linear_sucg(repeats: int = 3, seed: int = 7):
    """OneLinear with an SUCG adapter whose P, Q and lambda are all non-zero."""
    torch.manual_seed(0)
    model = apply_adapter(
        OneLinear(),
        AdapterConfig(type="sucg", target_modules=["proj"], init_r=4, target_r=2, lora_dropout=0.0,
                      tinit=0, tfinal=0, delta_t=1, sucg_repeats=repeats, sucg_seed=seed),
        total_steps=10,
    )
    layer = model.base_model.model.proj
    with torch.no_grad():
        layer.lora_A["default"].normal_()
        layer.lora_B["default"].normal_()
        layer.lora_E["default"].copy_(torch.tensor([[0.5], [-1.0], [2.0], [0.25]]))
    x = torch.randn(6, 5)
    target = torch.randn(6, 3)
    return model, layer, x, target


def hand_gradient(layer, x: torch.Tensor, target: torch.Tensor, coalition: torch.Tensor) -> torch.Tensor:
    """dL/dlambda'_i for L = sum (W x + c B diag(lambda') A x - t)^2, c = alpha / rank."""
    A, B = layer.lora_A["default"].detach(), layer.lora_B["default"].detach()
    lam = layer.lora_E["default"].detach().view(-1) * coalition.view(-1)
    c = layer.scaling["default"] / (layer.ranknum["default"].item() + 1e-5)
    W = layer.base_layer.weight.detach()
    residual = x @ W.T + c * (x @ A.T) * lam @ B.T - target  # (batch, out)
    projected_in = x @ A.T  # (batch, rank): A_i . x
    projected_out = residual @ B  # (batch, rank): residual . B_i
    return (2 * c * projected_in * projected_out).sum(dim=0).view(-1, 1)


def test_expected_gradient_is_half_the_mean_gradient_under_fixed_coalitions():
    model, layer, x, target = one_linear_sucg()
    lam = {"proj.lora_E": layer.lora_E["default"]}
    coalitions = [torch.tensor([[1.0], [0.0], [1.0], [1.0]]), torch.tensor([[0.0], [1.0], [1.0], [0.0]])]
    loss = lambda: ((model(x) - target) ** 2).sum()  # noqa: E731
    got = expected_gradient(loss, lam, [{"proj.lora_E": c} for c in coalitions])["proj.lora_E"]
    by_hand = 0.5 * (hand_gradient(layer, x, target, coalitions[0]) + hand_gradient(layer, x, target, coalitions[1])) / 2
    assert torch.allclose(got, by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(got, 0.5 * hand_gradient(layer, x, target, torch.ones(4, 1)))  # masks matter


def test_allocator_feeds_sucg_sensitivity_into_adalora_emas():
    """One scoring step: EMA of |lambda * E-grad| for lambda, EMA of |p * grad| for P and Q (Eq. 5-7)."""
    model, layer, x, target = one_linear_sucg(repeats=3, seed=7)
    loss = lambda: ((model(x) - target) ** 2).sum()  # noqa: E731
    loss().backward()
    step_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    values = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    coalitions = sample_coalitions({"e": layer.lora_E["default"]}, 3, torch.Generator().manual_seed(7))
    by_hand = 0.5 * sum(hand_gradient(layer, x, target, c["e"]) for c in coalitions) / 3

    after_optimizer_step(model, 1, loss)  # step 1 scores, then allocates 3 of the 4 ranks
    assert (layer.lora_E["default"] == 0).sum() == 1
    allocator = model.base_model.rankallocator
    beta1, beta2 = allocator.beta1, allocator.beta2
    for name, value in values.items():
        key = name.removeprefix("base_model.model.")
        sensitivity = (value * (by_hand if "lora_E" in name else step_grads[name])).abs()
        assert torch.allclose(allocator.ipt[key], sensitivity, rtol=1e-5, atol=1e-7), name
        assert torch.allclose(allocator.exp_avg_ipt[key], (1 - beta1) * sensitivity, rtol=1e-5, atol=1e-7), name
        uncertainty = (1 - beta2) * (sensitivity - (1 - beta1) * sensitivity).abs()
        assert torch.allclose(allocator.exp_avg_unc[key], uncertainty, rtol=1e-5, atol=1e-7), name
    for name, p in model.named_parameters():
        if p.requires_grad:
            assert torch.equal(p.grad, step_grads[name]), f"{name}: training gradient was not restored"


def test_expected_gradient_matches_finite_differences_on_tiny_t5():
    model = adapted("sucg", total_steps=10, lora_dropout=0.0).double()
    batch = random_batch(size=2)
    with torch.no_grad():  # gradients well above the float32 softmax inside T5 attention
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(std=0.5)
    lam = {n: p for n, p in model.named_parameters() if "lora_E" in n}
    coalitions = sample_coalitions(lam, 2, torch.Generator().manual_seed(3))
    got = expected_gradient(lambda: model(**batch).loss, lam, coalitions)

    probe = "base_model.model.decoder.block.1.layer.1.EncDecAttention.v.lora_E.default"
    param, eps = lam[probe], 1e-2
    for index in (0, 5):
        differences = []
        for coalition in coalitions:
            with torch.no_grad():
                original = {n: p.clone() for n, p in lam.items()}
                losses = []
                for sign in (1, -1):
                    for n, p in lam.items():
                        p.copy_(original[n] * coalition[n])
                    param[index, 0] += sign * eps
                    losses.append(model(**batch).loss.item())
                for n, p in lam.items():
                    p.copy_(original[n])
            differences.append((losses[0] - losses[1]) / (2 * eps))
        assert got[probe][index, 0].item() == pytest.approx(0.5 * sum(differences) / 2, rel=2e-3)


def test_coalitions_are_seeded_fair_coins():
    shapes = {"a": torch.zeros(40, 1), "b": torch.zeros(60, 1)}
    draws = sample_coalitions(shapes, 50, torch.Generator().manual_seed(0))
    stacked = torch.cat([torch.cat([d["a"], d["b"]]) for d in draws])
    assert set(stacked.unique().tolist()) == {0.0, 1.0}
    assert 0.45 < stacked.mean().item() < 0.55
    again = sample_coalitions(shapes, 50, torch.Generator().manual_seed(0))
    assert all(torch.equal(d["a"], e["a"]) and torch.equal(d["b"], e["b"]) for d, e in zip(draws, again))
    assert not torch.equal(draws[0]["a"], draws[1]["a"])


def test_singular_values_are_restored_when_the_loss_fails():
    model, layer, x, _ = one_linear_sucg()
    before = layer.lora_E["default"].detach().clone()
    lam = {"e": layer.lora_E["default"]}
    with pytest.raises(ValueError, match="scalar loss"):
        expected_gradient(lambda: model(x), lam, [{"e": torch.zeros(4, 1)}])
    assert torch.equal(layer.lora_E["default"], before)


@pytest.mark.slow
@pytest.mark.parametrize(("every", "scored_steps"), [("allocation", [3, 6, 9, 12, 15]), ("step", list(range(1, 16)))])
def test_extra_passes_run_on_the_scheduled_steps(every, scored_steps):
    """allocation: deltaT-th steps of the budget phase plus the final allocation (15 = 20 - tfinal)."""
    model = adapted("sucg", total_steps=20, tinit=2, tfinal=5, delta_t=3, sucg_repeats=2, sucg_every=every)
    batch = random_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    passes: list[int] = []
    for step in range(1, 21):
        model(**batch).loss.backward()
        optimizer.step()

        def closure(step=step):
            passes.append(step)
            return model(**batch).loss

        after_optimizer_step(model, step, closure)
        optimizer.zero_grad()
    assert passes == [s for s in scored_steps for _ in range(2)]


@pytest.mark.slow
def test_sucg_and_adalora_allocate_different_ranks_from_the_same_start():
    batch = random_batch()
    patterns = {}
    for adapter_type in ("adalora", "sucg"):
        model = adapted(adapter_type, total_steps=24, init_r=6, target_r=3, delta_t=4, tinit=2, tfinal=4)
        train(model, steps=24, batch=batch)
        patterns[adapter_type] = adapter_ranks(model)
    assert sum(patterns["adalora"].values()) == sum(patterns["sucg"].values())
    assert patterns["adalora"] != patterns["sucg"]


def test_allocator_rejects_bad_settings():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = get_peft_model(OneLinear(), AdaLoraConfig(target_modules=["proj"], total_step=10))
    args = (model.base_model.model, model.peft_config["default"], "default")
    with pytest.raises(ValueError, match="repeats >= 1"):
        SUCGRankAllocator(*args, repeats=0, every="step", seed=0)
    with pytest.raises(ValueError, match="'allocation' or 'step'"):
        SUCGRankAllocator(*args, repeats=5, every="never", seed=0)
