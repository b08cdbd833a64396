"""SUCG importance (seed 000, Eq. 11-13) against hand computations, and its effect on rank allocation."""

from __future__ import annotations

import warnings

import pytest
import torch
from peft import AdaLoraConfig, get_peft_model
from peft.tuners.adalora.layer import AdaLoraLayer
from torch import nn

from test_adapters import adapted, random_batch, train
from todrl.adapters import AdapterConfig, adapter_ranks, after_optimizer_step, apply_adapter
from todrl.sucg import SUCGRankAllocator, bernoulli_draw, expected_gradient


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


def layers_of(model) -> dict:
    """What the allocator scores: AdaLoRA layers by the name of their singular values."""
    return {f"{n}.lora_E.default": m for n, m in model.base_model.model.named_modules() if isinstance(m, AdaLoraLayer)}


def fixed_draw(masks: list[torch.Tensor]):
    """Hands out `masks` in turn: one (rows, rank) mask per layer and pass."""
    queue = list(masks)
    return lambda name, rows, rank: queue.pop(0)


def squared_error(model, x, target):
    return lambda: ((model(x) - target) ** 2).sum()


def test_each_row_gets_its_own_coalition():
    """0.5 * sum over rows of dL/dlambda' of that row under its own mask, by hand (Eq. 13, one pass)."""
    model, layer, x, target = one_linear_sucg()
    masks = torch.bernoulli(torch.full((6, 4), 0.5), generator=torch.Generator().manual_seed(1))
    got = expected_gradient(squared_error(model, x, target), layers_of(model), "default", 6, fixed_draw([masks]))
    by_hand = 0.5 * sum(hand_gradient(layer, x[b : b + 1], target[b : b + 1], masks[b]) for b in range(6))
    assert torch.allclose(got["proj.lora_E.default"], by_hand, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(by_hand, 0.5 * hand_gradient(layer, x, target, torch.ones(4)), rtol=0.1)  # masks matter


def test_fewer_rows_than_coalitions_take_more_passes_and_average_them():
    model, layer, x, target = one_linear_sucg()
    masks = [torch.bernoulli(torch.full((6, 4), 0.5), generator=torch.Generator().manual_seed(s)) for s in range(3)]
    calls = []

    def closure():
        calls.append(1)
        return squared_error(model, x, target)()

    got = expected_gradient(closure, layers_of(model), "default", 13, fixed_draw(masks))["proj.lora_E.default"]
    assert len(calls) == 3  # ceil(13 / 6)
    sums = [sum(hand_gradient(layer, x[b : b + 1], target[b : b + 1], m[b]) for b in range(6)) for m in masks]
    assert torch.allclose(got, 0.5 * sum(sums) / 3, rtol=1e-5, atol=1e-6)


def test_row_coalitions_average_to_the_exact_expected_gradient():
    """Unbiased: over many draws the one-pass estimate meets 0.5 * E_X[grad L(X lambda)] of the whole batch,
    computed exactly over all 2^4 coalitions."""
    model, layer, x, target = one_linear_sucg()
    every = [torch.tensor([(k >> i) & 1 for i in range(4)], dtype=torch.float32) for k in range(16)]
    exact = 0.5 * sum(hand_gradient(layer, x, target, coalition) for coalition in every) / 16
    draw = bernoulli_draw(torch.Generator().manual_seed(0))
    estimates = torch.stack([
        expected_gradient(squared_error(model, x, target), layers_of(model), "default", 1, draw)["proj.lora_E.default"]
        for _ in range(3000)
    ])
    standard_error = estimates.std(dim=0) / 3000**0.5
    assert ((estimates.mean(dim=0) - exact).abs() < 4 * standard_error).all()
    assert ((exact - 0.5 * hand_gradient(layer, x, target, torch.ones(4))).abs() > 20 * standard_error).any()


def test_allocator_feeds_sucg_sensitivity_into_adalora_emas():
    """One scoring step: EMA of |lambda * E-grad| for lambda, EMA of |p * grad| for P and Q (Eq. 5-7)."""
    model, layer, x, target = one_linear_sucg(repeats=3, seed=7)
    loss = lambda: ((model(x) - target) ** 2).sum()  # noqa: E731
    loss().backward()
    step_grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
    values = {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}
    masks = bernoulli_draw(torch.Generator().manual_seed(7))("proj", 6, 4)  # 3 coalitions: one pass of 6 rows
    by_hand = 0.5 * sum(hand_gradient(layer, x[b : b + 1], target[b : b + 1], masks[b]) for b in range(6))

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


def test_shared_coalitions_reproduce_full_batch_passes_on_tiny_t5():
    """With every row on the same coalition the hooks compute what PEFT's own forward computes with
    lambda := X * lambda written into the parameters (the full-batch estimator, one pass per coalition)."""
    model = adapted("sucg", total_steps=10, lora_dropout=0.0).double()
    batch = random_batch(size=3)
    with torch.no_grad():  # gradients well above the float32 softmax inside T5 attention
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(std=0.5)
    layers = layers_of(model)
    lam = {name: layer.lora_E["default"] for name, layer in layers.items()}
    generator = torch.Generator().manual_seed(3)
    coalitions = [{n: torch.bernoulli(torch.full((p.numel(),), 0.5), generator=generator).double() for n, p in lam.items()}
                  for _ in range(2)]
    shared = [c[n].expand(3, -1) for c in coalitions for n in lam]  # T5 runs its layers in registration order
    got = expected_gradient(lambda: model(**batch).loss, layers, "default", 6, fixed_draw(shared))

    original = {n: p.detach().clone() for n, p in lam.items()}
    reference = dict.fromkeys(lam, 0)
    for coalition in coalitions:
        with torch.no_grad():
            for n, p in lam.items():
                p.copy_(original[n] * coalition[n].view_as(p))
        grads = torch.autograd.grad(model(**batch).loss, list(lam.values()))
        reference = {n: reference[n] + 0.5 * g / 2 for n, g in zip(lam, grads)}
        with torch.no_grad():
            for n, p in lam.items():
                p.copy_(original[n])
    for name in lam:
        assert torch.allclose(got[name], reference[name], rtol=1e-6, atol=1e-9), (name, (got[name] - reference[name]).abs().max())
        assert torch.equal(lam[name], original[name])


def test_coalitions_are_seeded_fair_coins():
    draw = bernoulli_draw(torch.Generator().manual_seed(0))
    draws = [draw("a", 40, 60) for _ in range(2)]
    assert set(draws[0].unique().tolist()) == {0.0, 1.0}
    assert 0.45 < draws[0].mean().item() < 0.55
    again = bernoulli_draw(torch.Generator().manual_seed(0))
    assert all(torch.equal(d, again("a", 40, 60)) for d in draws)
    assert not torch.equal(draws[0], draws[1]) and not torch.equal(draws[0][0], draws[0][1])


def test_singular_values_and_hooks_are_restored_on_errors():
    model, layer, x, _ = one_linear_sucg()
    before = layer.lora_E["default"].detach().clone()
    draw = bernoulli_draw(torch.Generator().manual_seed(0))
    with pytest.raises(ValueError, match="scalar loss"):
        expected_gradient(lambda: model(x), layers_of(model), "default", 1, draw)
    with pytest.raises(ValueError, match="rows as dimension 0"):
        expected_gradient(lambda: model(x).sum() + model(x[:2]).sum(), layers_of(model), "default", 1, draw)
    assert torch.equal(layer.lora_E["default"], before)
    assert not layer._forward_hooks


@pytest.mark.slow
@pytest.mark.parametrize(("every", "scored_steps"), [("allocation", [3, 6, 9, 12, 15]), ("step", list(range(1, 16)))])
def test_extra_passes_run_on_the_scheduled_steps(every, scored_steps):
    """allocation: deltaT-th steps of the budget phase plus the final allocation (15 = 20 - tfinal); two passes
    each, as 6 coalitions need two batches of 4 rows."""
    model = adapted("sucg", total_steps=20, tinit=2, tfinal=5, delta_t=3, sucg_repeats=6, sucg_every=every)
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
