"""Rollouts: sample responses to dialogue contexts token by token, then score them.

One loop serves seq2seq and causal policies: `StepDecoder` hides how each kind
feeds its KV cache.  Sampling is our own short loop rather than
`generate()` because NLPO needs a second model (the mask policy) stepping in
lock-step with its own cache, and the mask it produces must be kept.

Scoring is a separate teacher-forced pass (`score`), the same code the update
uses, so the stored log-probs are exactly those the first PPO epoch recomputes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields
from functools import partial
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn
from torch.utils.weak import WeakIdKeyDictionary
from transformers.modeling_outputs import BaseModelOutput

from todrl.models import is_seq2seq

ContextFactory = Callable[[], AbstractContextManager]
ActionMasker = Callable[[Tensor | None], Tensor]
"""Given the last sampled tokens (None at the first step), the boolean set of allowed next tokens."""
StopRule = Callable[[Tensor], bool]
"""Given which rows are still generating, whether the sampling loop may stop."""


@runtime_checkable
class RowDropper(Protocol):
    """A step-by-step model whose cache can drop rows that have finished (StepDecoder, NLPO's masker)."""

    def select(self, rows: Tensor) -> None: ...


def all_finished(alive: Tensor) -> bool:
    return not bool(alive.any())


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, so a padded causal prompt reads like an unpadded one."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


_PACKED: WeakIdKeyDictionary = WeakIdKeyDictionary()
"""Frozen weight -> (what it held when packed, its oneDNN-packed copy): packed once per run, not per rollout."""


def packed_weight(weight: Tensor) -> Tensor:
    """The oneDNN-blocked copy of a frozen float32 weight, made again only if the weight's data changed."""
    stamp = (weight.data_ptr(), weight._version, weight.dtype, weight.shape)
    held = _PACKED.get(weight)
    if held is None or held[0] != stamp:
        held = stamp, torch.ops.mkldnn._reorder_linear_weight(weight.detach(), 8)
        _PACKED[weight] = held
    return held[1]


def can_prepack(weight: Tensor) -> bool:
    return (weight.device.type == "cpu" and weight.dtype == torch.float32 and not weight.requires_grad
            and torch.backends.mkldnn.is_available())


def _packed_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@contextmanager
def prepacked(modules: list[nn.Linear]) -> Iterator[None]:
    """Run these linear layers on oneDNN-packed weights, the kernels inductor's freezing uses on CPU.

    A decode step multiplies a few rows by every weight matrix, so its time is the weights' memory traffic,
    which the blocked layout streams faster than MKL reads the plain one (scripts/bench_rollout.py measures it).
    """
    for module in modules:
        module.forward = partial(_packed_linear, weight=packed_weight(module.weight), bias=module.bias)
    try:
        yield
    finally:
        for module in modules:
            del module.forward


def encode_unpadded(encoder, query: Tensor, query_mask: Tensor) -> BaseModelOutput:
    """The encoder's states for each row computed at the row's own length, zero where the batch pads.

    Padding is masked out of every attention, so the real positions come out as in a padded pass (up to float
    rounding) while the encoder skips the padded positions' arithmetic, a third of it on MultiWOZ batches.
    """
    states = None
    for row, (ids, mask) in enumerate(zip(query, query_mask.bool())):
        out = encoder(input_ids=ids[mask][None]).last_hidden_state[0]
        if states is None:
            states = out.new_zeros(*query.shape, out.shape[-1])
        states[row, mask] = out
    return BaseModelOutput(last_hidden_state=states)


class StepDecoder:
    """Next-token logits one token at a time, with a KV cache, for seq2seq or causal models.

    ``context`` is entered around every forward pass; NLPO uses it to switch
    the shared base model to the mask policy's adapter.  With ``keep_hidden``
    the last layer's state of each step is kept in ``last_hidden`` for the
    value head.  With ``prepack`` (CPU, float32) the frozen linear layers that
    run at every step use oneDNN-packed copies of their weights: decoding is
    faster, and the copies take the decoder's weight bytes again in memory.
    `select` drops finished rows from the cache.
    """

    def __init__(self, model, query: Tensor, query_mask: Tensor, context: ContextFactory = nullcontext,
                 keep_hidden: bool = False, prepack: bool = False) -> None:
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
        self.packed: list[nn.Linear] = []
        if prepack:  # a module whose forward is already replaced (accelerate's offload hooks) is left as it is
            stepping = [model.get_decoder(), model.get_output_embeddings()] if self.seq2seq else [model]
            self.packed = [m for part in stepping for m in part.modules()
                           if type(m) is nn.Linear and can_prepack(m.weight) and "forward" not in vars(m)]

    @torch.no_grad()
    def __call__(self, last_tokens: Tensor | None) -> Tensor:
        """Logits ``[rows, vocab]`` for the next token; ``last_tokens`` is None on the first call."""
        with self.context():
            if self.seq2seq:
                if self.encoder_outputs is None:
                    self.encoder_outputs = encode_unpadded(self.model.get_encoder(), self.query, self.query_mask)
                if last_tokens is None:
                    start = self.model.config.decoder_start_token_id
                    last_tokens = torch.full((self.query.shape[0],), start, dtype=torch.long, device=self.query.device)
                with prepacked(self.packed):
                    out = self.model(
                        encoder_outputs=self.encoder_outputs, attention_mask=self.query_mask,
                        decoder_input_ids=last_tokens[:, None], cache=self.cache, use_cache=True,
                        output_hidden_states=self.keep_hidden,
                    )
            elif last_tokens is None:
                with prepacked(self.packed):
                    out = self.model(input_ids=self.query, attention_mask=self.query_mask,
                                     position_ids=position_ids(self.query_mask), use_cache=True,
                                     output_hidden_states=self.keep_hidden)
            else:
                self.attention_mask = torch.cat([self.attention_mask, torch.ones_like(last_tokens[:, None])], dim=1)
                with prepacked(self.packed):
                    out = self.model(input_ids=last_tokens[:, None], attention_mask=self.attention_mask,
                                     position_ids=self.next_position, cache=self.cache, use_cache=True,
                                     output_hidden_states=self.keep_hidden)
                self.next_position = self.next_position + 1
        self.cache = out.cache
        if self.keep_hidden:
            states = out.decoder_hidden_states if self.seq2seq else out.hidden_states
            self.last_hidden = states[-1][:, -1]
        return out.logits[:, -1].float()

    def select(self, rows: Tensor) -> None:
        """Keep only these rows (indices into the current ones) in the cache and inputs."""
        self.query, self.query_mask = self.query[rows], self.query_mask[rows]
        self.attention_mask, self.next_position = self.attention_mask[rows], self.next_position[rows]
        if self.encoder_outputs is not None:
            self.encoder_outputs = BaseModelOutput(last_hidden_state=self.encoder_outputs.last_hidden_state[rows])
        if self.cache is not None:
            self.cache.batch_select_indices(rows)


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
    """``[batch, steps, hidden]`` last-layer states that chose each token, when the decoder keeps them
    (0 after the end)."""
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

    Finished rows leave the batch (when the masker, if any, can drop rows too), so the steps after them cost
    less.  Each step draws its random numbers for the whole batch, so a row's sample depends on the seed and
    its own history only, never on which other rows are still running.
    """
    batch, device = policy.query.shape[0], policy.query.device
    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    generating = torch.zeros(batch, max_new_tokens, dtype=torch.bool, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    unmasked_logprobs = torch.zeros(batch, max_new_tokens, device=device)
    hidden = action_mask = None
    droppable = masker is None or isinstance(masker, RowDropper)
    rows = torch.arange(batch, device=device)  # the batch rows the decoders still compute
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    last, steps = None, 0
    for t in range(max_new_tokens):
        steps = t + 1
        logits = policy(last)
        live = alive[rows]
        unmasked = torch.log_softmax(logits, dim=-1)
        if masker is not None:
            allowed = masker(last)
            logits = logits.masked_fill(~allowed, float("-inf"))
            if action_mask is None:  # nothing is sampled after the end: keep padding finite
                action_mask = torch.ones(batch, max_new_tokens, logits.shape[-1], dtype=torch.bool, device=device)
            action_mask[rows, t] = allowed | ~live[:, None]
        probs = torch.softmax(top_k_filter(logits, top_k), dim=-1)
        noise = torch.empty(batch, probs.shape[-1], device=device).exponential_(generator=generator)
        chosen = (probs / noise[rows]).argmax(-1)  # an exponential race: a draw from probs, as torch.multinomial
        chosen = torch.where(live, chosen, pad_id)
        scored = torch.log_softmax(logits, dim=-1) if masker is not None else unmasked
        tokens[rows, t] = chosen
        generating[rows, t] = live
        logprobs[rows, t] = scored.gather(-1, chosen[:, None]).squeeze(-1).masked_fill(~live, 0.0)
        unmasked_logprobs[rows, t] = unmasked.gather(-1, chosen[:, None]).squeeze(-1).masked_fill(~live, 0.0)
        if policy.last_hidden is not None:
            if hidden is None:
                hidden = policy.last_hidden.new_zeros(batch, max_new_tokens, policy.last_hidden.shape[-1])
            hidden[rows, t] = policy.last_hidden.masked_fill(~live[:, None], 0.0)
        alive[rows] = live & (chosen != eos_id)
        if finished(alive):
            break
        last = chosen
        keep = alive[rows]
        if droppable and keep.any() and not keep.all():
            kept = keep.nonzero().squeeze(-1)
            for decoder in (policy, masker) if masker is not None else (policy,):
                decoder.select(kept)
            rows, last = rows[kept], last[kept]
    hidden = hidden[:, :steps] if hidden is not None else None
    action_mask = action_mask[:, :steps] if action_mask is not None else None
    return Samples(tokens[:, :steps], generating[:, :steps].long(), logprobs[:, :steps], unmasked_logprobs[:, :steps],
                   hidden, action_mask)


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
