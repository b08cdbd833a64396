"""GAE and the PPO losses against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from todrl.rl.ppo import (
    entropy,
    explained_variance,
    gae,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_log_probs,
    value_loss,
)


def test_gae_matches_hand_computation_and_ignores_padding():
    # Row 0: three real tokens. Row 1: the same first two tokens, then padding with garbage.
    rewards = torch.tensor([[1.0, 0.0, 2.0], [1.0, 0.0, 99.0]])
    values = torch.tensor([[0.5, 0.2, 0.1], [0.5, 0.2, -7.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    advantages, returns = gae(rewards, values, mask, gamma=0.9, lam=0.8)
    # delta2 = 2 - 0.1 = 1.9; delta1 = 0 + 0.9*0.1 - 0.2 = -0.11; A1 = -0.11 + 0.72*1.9 = 1.258
    # delta0 = 1 + 0.9*0.2 - 0.5 = 0.68; A0 = 0.68 + 0.72*1.258 = 1.58576
    assert advantages[0].tolist() == pytest.approx([1.58576, 1.258, 1.9])
    assert returns[0].tolist() == pytest.approx([2.08576, 1.458, 2.0])
    # Row 1 ends after two tokens: A1 = 0 - 0.2 = -0.2; A0 = 1 + 0.18 - 0.5 + 0.72*(-0.2) = 0.536
    assert advantages[1].tolist() == pytest.approx([0.536, -0.2, 0.0])
    assert returns[1].tolist() == pytest.approx([1.036, 0.0, 0.0])


def test_gae_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must match"):
        gae(torch.zeros(2, 3), torch.zeros(2, 4), torch.ones(2, 3), 1.0, 1.0)


@settings(max_examples=30, deadline=None)
@given(
    rewards=st.lists(st.floats(-2, 2), min_size=1, max_size=6),
    pad=st.integers(0, 3),
    gamma=st.floats(0.5, 1.0),
)
def test_gae_with_lambda_one_and_zero_values_is_the_discounted_reward_to_go(rewards, pad, gamma):
    n = len(rewards)
    r = torch.tensor([rewards + [5.0] * pad], dtype=torch.float64)
    mask = torch.tensor([[1] * n + [0] * pad])
    advantages, returns = gae(r, torch.zeros_like(r), mask, gamma=gamma, lam=1.0)
    expected = [sum(gamma**k * rewards[t + k] for k in range(n - t)) for t in range(n)] + [0.0] * pad
    assert advantages[0].tolist() == pytest.approx(expected, abs=1e-9)
    assert returns[0].tolist() == pytest.approx(expected, abs=1e-9)


def test_policy_loss_clips_ratios_and_reports_clipfrac_and_kl():
    ratios = torch.tensor([[1.5, 0.5, 1.1, 3.0]])
    old = torch.zeros(1, 4)
    advantages = torch.tensor([[1.0, 1.0, -2.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = policy_loss(ratios.log(), old, advantages, mask, clip_range=0.2)
    # per token max(-A r, -A clip(r)): -1.2, -0.5, 2.2
    assert out.pg_loss.item() == pytest.approx((-1.2 - 0.5 + 2.2) / 3)
    assert out.clipfrac.item() == pytest.approx(2 / 3)
    kl = [(r - 1) - math.log(r) for r in (1.5, 0.5, 1.1)]
    assert out.approx_kl.item() == pytest.approx(sum(kl) / 3)


def test_policy_loss_gradient_vanishes_where_the_ratio_is_clipped():
    logprobs = torch.tensor([[math.log(1.5), math.log(1.1)]], requires_grad=True)
    out = policy_loss(logprobs, torch.zeros(1, 2), torch.ones(1, 2), torch.ones(1, 2), clip_range=0.2)
    out.pg_loss.backward()
    assert logprobs.grad[0, 0].item() == 0.0
    assert logprobs.grad[0, 1].item() == pytest.approx(-1.1 / 2)


def test_value_loss_plain_and_clipped():
    values = torch.tensor([[1.0, 0.0, 50.0]])
    old = torch.tensor([[0.5, 0.5, 0.0]])
    returns = torch.tensor([[2.0, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    assert value_loss(values, old, returns, mask, clip_range=None).item() == pytest.approx(0.5 * (1 + 1) / 2)
    # clipped values 0.7 and 0.3: max((1-2)^2, (0.7-2)^2) = 1.69, max((0-1)^2, (0.3-1)^2) = 1
    assert value_loss(values, old, returns, mask, clip_range=0.2).item() == pytest.approx(0.5 * (1.69 + 1.0) / 2)


def test_entropy_uniform_and_masked():
    logits = torch.zeros(1, 2, 4)
    mask = torch.tensor([[1, 0]])
    assert entropy(logits, mask).item() == pytest.approx(math.log(4))
    allowed = torch.tensor([[[True, True, False, False], [True, False, False, False]]])
    assert entropy(logits, mask, allowed).item() == pytest.approx(math.log(2))


def test_token_log_probs_plain_and_renormalized_over_the_action_mask():
    logits = torch.log(torch.tensor([[[0.5, 0.3, 0.2]]]))
    tokens = torch.tensor([[1]])
    assert token_log_probs(logits, tokens).item() == pytest.approx(math.log(0.3))
    allowed = torch.tensor([[[True, True, False]]])
    assert token_log_probs(logits, tokens, allowed).item() == pytest.approx(math.log(0.3 / 0.8))


def test_masked_statistics_skip_padding():
    values = torch.tensor([[1.0, 2.0, 3.0, 100.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)
    assert masked_whiten(values, mask).tolist()[0] == pytest.approx([-1.0, 0.0, 1.0, 0.0], abs=1e-6)
    returns = torch.tensor([[1.0, 2.0, 3.0, 0.0]])
    assert explained_variance(returns, returns, mask).item() == pytest.approx(1.0)
    assert explained_variance(torch.full_like(returns, 2.0), returns, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_masked_entropy_has_finite_gradients():
    logits = torch.randn(1, 2, 5, requires_grad=True)
    allowed = torch.tensor([[[True, False, True, False, False], [True, True, True, True, True]]])
    entropy(logits, torch.ones(1, 2), allowed).backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 0, 1].item() == 0.0
