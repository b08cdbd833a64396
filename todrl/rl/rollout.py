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
StopRule = Callable[[Tensor], bool]
"""Given which rows are still generating, whether the sampling loop may stop."""


def all_finished(alive: Tensor) -> bool:
    return not bool(alive.any())


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, so a padded causal prompt reads like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class StepDecoder:
    """Next-token logits one token at a time, with a KV cache, for seq2seq or causal models.

    ``context`` is entered around every forward pass; NLPO uses it to switch
    the shared base model to the mask policy's adapter.  With ``keep_hidden``
    the last layer's state of each step is kept in ``last_hidden`` for the
    value head.
    """

    def __init__(self, model, query: Tensor, query_mask: Tensor, context: ContextFactory = nullcontext,
                 keep_hidden: bool = False) -> None:
        self.model = model
        self.seq2seq = is_seq2seq(model)
        self.query, self.query_mask = query, query_mask
        self.context = context
        self.keep_hidden = keep_hidden
        self.last_hidden: Tensor | None = None
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
                    encoder_outputs=self.encoder_outputs, attention_mask=self.query_mask, decoder_input_ids=last_tokens[:, None],
                    cache=self.cache, use_cache=True, output_hidden_states=self.keep_hidden,
                )
            elif last_tokens is None:
                out = self.model(input_ids=self.query, attention_mask=self.query_mask, position_ids=position_ids(self.query_mask),
                                 use_cache=True, output_hidden_states=self.keep_hidden)
            else:
                self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(last_tokens[:, None])], dim=1)
                out = self.model(input_ids=last_tokens[:, None], attention_mask=self.attention_mask,
                                 position_ids=self.next_position, cache=self.cache, use_cache=True,
                                 output_hidden_states=self.keep_hidden)
                self.next_position = self.next_position + 1
        self.cache = out.cache
        if self.keep_hidden:
            states = out.decoder_hidden_states if self.seq2seq else out.hidden_states
            self.last_hidden = states[-1][:, -1]
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
    logprobs: Tensor
    """log-prob of each sampled token under the policy, renormalized over the action mask when there is one."""
    unmasked_logprobs: Tensor
    """log-prob under the policy's own distribution (what the KL penalty compares with the reference)."""
    hidden: Tensor | None
    """``[batch, steps, hidden]`` last-layer states that chose each token, when the decoder keeps them."""
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
    finished: StopRule = all_finished,
) -> Samples:
    """Top-k sampling until every sequence has produced ``eos_id`` or ``max_new_tokens``.

    With a masker the policy samples from its distribution restricted to
    the mask policy's top-p set (NLPO), and the set of each step is returned.
    `finished` decides when the loop ends; sharded training replaces it with an agreement between processes,
    because a sharded forward is a collective that every process must make the same number of times.
    Log-probs are those of the full (or masked) distribution, not of its top-k
    truncation: top-k only steers exploration.
    """
    batch = policy.query.shape[0]
    device = policy.query.device
    steps: dict[str, list[Tensor]] = {"tokens": [], "alive": [], "logprobs": [], "unmasked": [], "masks": [], "hidden": []}
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    last = None
    for _ in range(max_new_tokens):
        logits = policy(last)
        unmasked = torch.log_softmax(logits, dim=-1)
        if masker is not None:
            allowed = masker(last)
            logits = logits.masked_fill(~allowed, float("-inf"))
            steps["masks"].append(allowed | ~alive[:, None])  # nothing is sampled after the end: keep padding finite
        probs = torch.softmax(top_k_filter(logits, top_k), dim=-1)
        chosen = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        chosen = torch.where(alive, chosen, torch.full_like(chosen, pad_id))
        logprobs = torch.log_softmax(logits, dim=-1) if masker is not None else unmasked
        steps["tokens"].append(chosen)
        steps["alive"].append(alive.clone())
        steps["logprobs"].append(logprobs.gather(-1, chosen[:, None]).squeeze(-1).masked_fill(~alive, 0.0))
        steps["unmasked"].append(unmasked.gather(-1, chosen[:, None]).squeeze(-1).masked_fill(~alive, 0.0))
        if policy.last_hidden is not None:
            steps["hidden"].append(policy.last_hidden)
        alive &= chosen != eos_id
        if finished(alive):
            break
        last = chosen

    def stacked(name: str) -> Tensor | None:
        return torch.stack(steps[name], dim=1) if steps[name] else None

    return Samples(stacked("tokens"), stacked("alive").long(), stacked("logprobs"), stacked("unmasked"), stacked("hidden"),
                   stacked("masks"))


def score(model, query: Tensor, query_mask: Tensor, response: Tensor, response_mask: Tensor,
          with_hidden: bool = True) -> tuple[Tensor, Tensor | None]:
    """Teacher-forced logits ``[batch, steps, vocab]`` and last hidden states ``[batch, steps, hidden]``.

    Position t holds what the model computed *before* emitting response token t:
    the distribution that chose it and the state a value head should judge.
    """
    if is_seq2seq(model):
        start = torch.full_like(response[:, :1], model.config.decoder_start_token_id)
        decoder_input_ids = torch.cat([start, response[:, :-1]], dim=1)
        out = model(input_ids=query, attention_mask=query_mask, decoder_input_ids=decoder_input_ids,
                    output_hidden_states=with_hidden)
        return out.logits, out.decoder_hidden_states[-1] if with_hidden else None
    input_ids = torch.cat([query, response], dim=1)
    attention_mask = torch.cat([query_mask, response_mask], dim=1)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                output_hidden_states=with_hidden)
    span = slice(query.shape[1] - 1, query.shape[1] - 1 + response.shape[1])
    return out.logits[:, span], out.hidden_states[-1][:, span] if with_hidden else None


@dataclass
class Rollout:
    """What one PPO update needs about a batch of episodes; all ``[batch, steps]`` unless noted."""

    query: Tensor
    query_mask: Tensor
    response: Tensor
    response_mask: Tensor
    logprobs: Tensor
    """log-probs of the sampled tokens under the rollout policy (masked and renormalized with NLPO)."""
    values: Tensor
    advantages: Tensor
    returns: Tensor
    action_mask: Tensor | None = None
    """NLPO: ``[batch, steps, vocab]``; the update renormalizes the policy over it."""
    target: Tensor | None = None
    """``[batch, target steps]`` gold target ids of the episodes' turns, when the loss has an SFT term."""
    target_mask: Tensor | None = None

    def select(self, index: Tensor) -> Rollout:
        """The episodes at ``index`` (a minibatch)."""
        picked = {f.name: getattr(self, f.name) for f in fields(self)}
        return Rollout(**{name: None if value is None else value[index] for name, value in picked.items()})
