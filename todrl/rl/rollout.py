"""Rollouts: sample responses to dialogue contexts token by token, then score them.

One loop serves seq2seq and causal policies: `StepDecoder` hides how each kind
feeds its KV cache.  Sampling is our own short loop rather than
`generate()` because NLPO needs a second model (the mask policy) stepping in
lock-step with its own cache, and the mask it produces must be kept.

Scoring is a separate teacher-forced pass (`score`), the same code the update
uses, so the stored log-probs are exactly those the first PPO epoch recomputes.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, fields

import torch
from torch import Tensor

from todrl.models import is_seq2seq

ContextFactory = Callable[[], AbstractContextManager]
ActionMasker = Callable[[Tensor | None], Tensor]
"""Given the last sampled tokens (None at the first step), the boolean set of allowed next tokens."""


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, so a padded causal prompt reads like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class StepDecoder:
    """Next-token logits one token at a time, with a KV cache, for seq2seq or causal models.

    ``context`` is entered around every forward pass; NLPO uses it to switch
    the shared base model to the mask policy's adapter.
    """

    def __init__(self, model, query: Tensor, query_mask: Tensor, context: ContextFactory = nullcontext) -> None:
        self.model = model
        self.seq2seq = is_seq2seq(model)
        self.query, self.query_mask = query, query_mask
        self.context = context
        self.cache = None
        self.encoder_outputs = None
        self.attention_mask = query_mask
        self.next_position = position_ids(query_mask)[:, -1:] + 1

    @torch.no_grad()
    def __call__(self, last_tokens: Tensor | None) -> Tensor:
        """Logits ``[batch, vocab]`` for the next token; ``last_tokens`` is None on the first call."""
        with self.context():
            if self.seq2seq:
                if self.encoder_outputs is None:
                    self.encoder_outputs = self.model.get_encoder()(input_ids=self.query, attention_mask=self.query_mask)
                if last_tokens is None:
                    start = self.model.config.decoder_start_token_id
                    last_tokens = torch.full((self.query.shape[0],), start, dtype=torch.long, device=self.query.device)
                out = self.model(
                    encoder_outputs=self.encoder_outputs, attention_mask=self.query_mask,
                    decoder_input_ids=last_tokens[:, None], past_key_values=self.cache, use_cache=True,
                )
            elif last_tokens is None:
                out = self.model(input_ids=self.query, attention_mask=self.query_mask,
                                 position_ids=position_ids(self.query_mask), use_cache=True)
            else:
                self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(last_tokens[:, None])], dim=1)
                out = self.model(input_ids=last_tokens[:, None], attention_mask=self.attention_mask,
                                 position_ids=self.next_position, past_key_values=self.cache, use_cache=True)
                self.next_position = self.next_position + 1
        self.cache = out.past_key_values
        return out.logits[:, -1].float()


def top_k_filter(logits: Tensor, k: int) -> Tensor:
    """Keep the k highest logits (all when k is 0); the rest become -inf."""
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = logits.topk(k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


@dataclass
class Samples:
    response: Tensor
    """``[batch, steps]`` sampled ids, ``pad_id`` after each sequence's end."""
    response_mask: Tensor
    """1 on generated tokens, the end-of-sequence token included."""
    action_mask: Tensor | None
    """NLPO only: ``[batch, steps, vocab]`` top-p set of the mask policy at each step."""


@torch.no_grad()
def sample(
    policy: StepDecoder,
    max_new_tokens: int,
    eos_id: int,
    pad_id: int,
    top_k: int = 50,
    masker: ActionMasker | None = None,
    generator: torch.Generator | None = None,
) -> Samples:
    """Top-k sampling until every sequence has produced ``eos_id`` or ``max_new_tokens``.

    With a masker the policy samples from its distribution restricted to
    the mask policy's top-p set (NLPO), and the set of each step is returned.
    """
    batch = policy.query.shape[0]
    device = policy.query.device
    tokens: list[Tensor] = []
    masks: list[Tensor] = []
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    alive_steps: list[Tensor] = []
    last = None
    for _ in range(max_new_tokens):
        logits = policy(last)
        if masker is not None:
            allowed = masker(last)
            logits = logits.masked_fill(~allowed, float("-inf"))
            masks.append(allowed)
        probs = torch.softmax(top_k_filter(logits, top_k), dim=-1)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        chosen = torch.where(alive, chosen, torch.full_like(chosen, pad_id))
        tokens.append(chosen)
        alive_steps.append(alive.clone())
        alive &= chosen != eos_id
        if not alive.any():
            break
        last = chosen
    response_mask = torch.stack(alive_steps, dim=1).long()
    action_mask = torch.stack(masks, dim=1) if masks else None
    if action_mask is not None:
        # After the end nothing is sampled; allow everything so padded positions stay finite.
        action_mask |= ~response_mask.bool()[..., None]
    return Samples(torch.stack(tokens, dim=1), response_mask, action_mask)


def score(model, query: Tensor, query_mask: Tensor, response: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
    """Teacher-forced logits ``[batch, steps, vocab]`` and last hidden states ``[batch, steps, hidden]``.

    Position t holds what the model computed *before* emitting response token t:
    the distribution that chose it and the state a value head should judge.
    """
    if is_seq2seq(model):
        start = torch.full_like(response[:, :1], model.config.decoder_start_token_id)
        decoder_input_ids = torch.cat([start, response[:, :-1]], dim=1)
        out = model(input_ids=query, attention_mask=query_mask, decoder_input_ids=decoder_input_ids, output_hidden_states=True)
        return out.logits, out.decoder_hidden_states[-1]
    input_ids = torch.cat([query, response], dim=1)
    attention_mask = torch.cat([query_mask, response_mask], dim=1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask), output_hidden_states=True)
    start = query.shape[1] - 1
    steps = response.shape[1]
    return out.logits[:, start : start + steps], out.hidden_states[-1][:, start : start + steps]


@dataclass
class Rollout:
    """Everything one PPO update needs about a batch of episodes; all ``[batch, steps]`` unless noted."""

    query: Tensor
    query_mask: Tensor
    response: Tensor
    response_mask: Tensor
    logprobs: Tensor
    ref_logprobs: Tensor
    values: Tensor
    task_rewards: Tensor
    rewards: Tensor
    """Task reward minus beta times the per-token KL to the reference."""
    advantages: Tensor
    returns: Tensor
    action_mask: Tensor | None = None
    """NLPO: ``[batch, steps, vocab]``; the update renormalizes the policy over it."""

    def select(self, index: Tensor) -> Rollout:
        """The episodes at ``index`` (a minibatch)."""
        return Rollout(**{f.name: (None if getattr(self, f.name) is None else getattr(self, f.name)[index]) for f in fields(self)})
