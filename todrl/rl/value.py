"""The critic: one linear layer on the policy's last hidden states, and the policy + critic module.

Sharing the policy's trunk keeps the value function at ``hidden_size + 1``
parameters instead of a second full model.  The head starts at zero output so
the first advantages are plain discounted rewards rather than noise from a
random head.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import Tensor, nn

from todrl.rl.rollout import score

T = TypeVar("T")


class ValueHead(nn.Module):
    """V(s_t) for every generated position, from the hidden state that predicts token t."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        if hidden_size <= 0:
            raise ValueError(f"ValueHead: hidden_size must be > 0, got {hidden_size}")
        self.summary = nn.Linear(hidden_size, 1)
        nn.init.zeros_(self.summary.weight)
        nn.init.zeros_(self.summary.bias)

    def forward(self, hidden_states: Tensor) -> Tensor:
        """``[batch, steps, hidden] -> [batch, steps]``, computed in float32 whatever the trunk's dtype."""
        return self.summary(hidden_states.to(self.summary.weight.dtype)).squeeze(-1)


def hidden_size_of(config: object) -> int:
    """Width of the decoder's last hidden state (``d_model`` for T5, ``hidden_size`` for Llama-style)."""
    for name in ("d_model", "hidden_size", "n_embd"):
        size = getattr(config, name, None)
        if isinstance(size, int):
            return size
    raise ValueError(f"cannot find the hidden size of {type(config).__name__}: none of d_model, hidden_size, n_embd")


class ActorCritic(nn.Module):
    """The policy and its critic as one module, so one optimizer and one DDP wrapper see every trainable weight.

    By default the critic reads the policy's own hidden states; ``value_model``
    (a separate network, RL4LMs style) decouples the critic at the cost of
    another model.
    """

    def __init__(self, policy: nn.Module, value_head: ValueHead, value_model: nn.Module | None = None) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = value_head
        self.value_model = value_model

    @property
    def _no_split_modules(self) -> list[str]:
        """The policy's block classes: accelerate's FSDP auto-wrap shards each block as a unit of its own."""
        return list(getattr(self.policy, "_no_split_modules", None) or [])

    def run(self, passes: Callable[[], T]) -> T:
        """`passes()`: model calls made outside `forward` (sampling, reference, evaluation).

        Under FSDP2 the trainer registers this method as a forward
        (`register_fsdp_forward_method`), so the weights the root holds
        (embeddings, value head) are gathered around it as around a forward.
        """
        return passes()

    def forward(self, query: Tensor, query_mask: Tensor, response: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token logits ``[batch, steps, vocab]`` and values ``[batch, steps]``."""
        if self.value_model is not None:
            logits, _ = score(self.policy, query, query_mask, response, response_mask, with_hidden=False)
            return logits, self.values(query, query_mask, response, response_mask)
        logits, hidden = score(self.policy, query, query_mask, response, response_mask)
        return logits, self.value_head(hidden)

    def gold_logits(self, query: Tensor, query_mask: Tensor, target: Tensor, target_mask: Tensor) -> Tensor:
        """The policy's teacher-forced logits on the gold targets (the SFT term of the RL loss)."""
        return score(self.policy, query, query_mask, target, target_mask, with_hidden=False)[0]

    def values(self, query: Tensor, query_mask: Tensor, response: Tensor, response_mask: Tensor) -> Tensor:
        """Values alone, from the separate value model when there is one."""
        critic = self.value_model if self.value_model is not None else self.policy
        _, hidden = score(critic, query, query_mask, response, response_mask)
        return self.value_head(hidden)
