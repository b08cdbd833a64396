"""PPO on token sequences as pure tensor functions.

Every tensor is ``[batch, steps]`` over generated tokens, with a ``mask`` that is
1 on real tokens and 0 on padding after the end of a sequence.  Each sequence is
one episode (one dialogue turn), so the step after the last real token is
terminal.  Means are taken over real tokens only: a padded position must never
move a loss, an advantage statistic or a logged figure.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over positions where ``mask`` is set (0 when none is)."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def masked_var(values: Tensor, mask: Tensor) -> Tensor:
    """Unbiased variance over masked positions, so one minibatch matches ``torch.var``."""
    mask = mask.to(values.dtype)
    count = mask.sum()
    mean = (values * mask).sum() / count.clamp(min=1.0)
    return (((values - mean) ** 2) * mask).sum() / (count - 1).clamp(min=1.0)


def masked_whiten(values: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Normalize to zero mean and unit variance over real tokens; padding becomes 0."""
    mean = masked_mean(values, mask)
    whitened = (values - mean) * torch.rsqrt(masked_var(values, mask) + eps)
    return whitened * mask.to(values.dtype)


def gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimates and returns (Schulman et al. 2016).

    The value after the last real token is 0 because the episode ends there;
    padded positions get 0 advantage and 0 return.
    """
    if rewards.shape != values.shape or rewards.shape != mask.shape:
        shapes = ", ".join(f"{name} {tuple(t.shape)}" for name, t in (("rewards", rewards), ("values", values), ("mask", mask)))
        raise ValueError(f"gae: {shapes} must match")
    mask = mask.to(values.dtype)
    rewards = rewards * mask
    values = values * mask
    steps = rewards.shape[1]
    advantages = torch.zeros_like(rewards)
    last_gae = torch.zeros_like(rewards[:, 0])
    for t in reversed(range(steps)):
        next_nonterminal = mask[:, t + 1] if t + 1 < steps else torch.zeros_like(last_gae)
        next_value = values[:, t + 1] if t + 1 < steps else torch.zeros_like(last_gae)
        delta = rewards[:, t] + gamma * next_value * next_nonterminal - values[:, t]
        last_gae = (delta + gamma * lam * next_nonterminal * last_gae) * mask[:, t]
        advantages[:, t] = last_gae
    return advantages, (advantages + values) * mask


@dataclass
class PolicyLossOutput:
    pg_loss: Tensor
    clipfrac: Tensor
    approx_kl: Tensor
    """k3 estimator of KL(old || new), ``(r - 1) - log r``: low variance and never negative."""


def policy_loss(logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, clip_range: float) -> PolicyLossOutput:
    """PPO's clipped surrogate objective, as a loss to minimize."""
    log_ratio = (logprobs - old_logprobs) * mask.to(logprobs.dtype)
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range)
    pg_loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean(((ratio - 1.0).abs() > clip_range).to(logprobs.dtype), mask)
        approx_kl = masked_mean((ratio - 1.0) - log_ratio, mask)
    return PolicyLossOutput(pg_loss=pg_loss, clipfrac=clipfrac, approx_kl=approx_kl)


def value_loss(values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip_range: float | None) -> Tensor:
    """Half the squared error to the returns; with ``clip_range`` the pessimistic clipped form of PPO2."""
    loss = (values - returns) ** 2
    if clip_range is not None:
        clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
        loss = torch.maximum(loss, (clipped - returns) ** 2)
    return 0.5 * masked_mean(loss, mask)


def entropy(logits: Tensor, mask: Tensor, action_mask: Tensor | None = None) -> Tensor:
    """Mean entropy of the per-token distributions, restricted to ``action_mask`` (NLPO) when given."""
    logits = logits.float()
    if action_mask is not None:
        logits = logits.masked_fill(~action_mask, float("-inf"))
    logp = torch.log_softmax(logits, dim=-1)
    probs = logp.exp()
    if action_mask is not None:
        # 0 * -inf is nan, and so would be its gradient: excluded tokens contribute exactly 0.
        logp = logp.masked_fill(~action_mask, 0.0)
    return masked_mean(-(probs * logp).sum(-1), mask)


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """1 - Var(returns - values) / Var(returns): 1 is a perfect critic, 0 no better than a constant."""
    var_returns = masked_var(returns, mask)
    return 1.0 - masked_var(returns - values, mask) / var_returns.clamp(min=1e-8)


def token_log_probs(logits: Tensor, tokens: Tensor, action_mask: Tensor | None = None) -> Tensor:
    """log pi(token) per position; with an NLPO ``action_mask`` the distribution is renormalized over the allowed set."""
    logits = logits.float()
    if action_mask is not None:
        logits = logits.masked_fill(~action_mask, float("-inf"))
    return logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
