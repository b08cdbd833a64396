"""NLPO's action mask (Ramamurthy et al. 2023): sample only among the tokens a mask policy finds likely.

The mask at each step is the top-p set of the mask policy's next-token
distribution.  It is stored with the rollout so that the update scores the same
masked, renormalized distribution that produced the sample.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from peft import PeftModel
from torch import Tensor, nn
from torch.distributed.tensor import DTensor

from todrl.rl.rollout import StepDecoder


def top_p_mask(logits: Tensor, top_p: float = 0.9, keep_ids: Sequence[int] = ()) -> Tensor:
    """Boolean mask of the smallest set of most likely tokens whose probability reaches ``top_p``.

    The most likely token is always kept, so the set is never empty.  ``keep_ids``
    (end of sequence) stay allowed whatever their probability: without them a
    confident mask policy could forbid a sequence from ever ending.
    """
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    probs = torch.softmax(logits.float(), dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    mass_before = sorted_probs.cumsum(dim=-1) - sorted_probs
    keep_sorted = mass_before < top_p
    keep_sorted[..., 0] = True
    mask = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    if keep_ids:
        mask[..., list(keep_ids)] = True
    return mask


@dataclass
class TopPMasker:
    """The mask policy stepping in lock-step with the sampler: its top-p set at every step."""

    decoder: StepDecoder
    top_p: float
    keep_ids: tuple[int, ...]

    def __call__(self, last_tokens: Tensor | None) -> Tensor:
        return top_p_mask(self.decoder(last_tokens), self.top_p, self.keep_ids)

    def select(self, rows: Tensor) -> None:
        """Drop finished rows, as the sampler drops them from the policy."""
        self.decoder.select(rows)


class MaskPolicy:
    """The policy as it was at the last re-sync: the source of NLPO's action masks.

    With adapters it is a second, frozen adapter on the same base model (a few
    MB), refreshed by copying the trainable adapter's tensors into it; for full
    fine-tuning it is a frozen copy of the whole model.  ``sync`` really copies
    the current weights: the masks come from the current policy of N iterations
    ago, not from the SFT model forever.
    """

    ADAPTER = "nlpo_mask"

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.copy: nn.Module | None = None
        if isinstance(model, PeftModel):
            self.source = model.active_adapter
            config = copy.deepcopy(model.peft_config[self.source])
            config.inference_mode = True
            model.add_adapter(self.ADAPTER, config)
            model.train(model.training)  # new modules start in training mode: give the snapshot the policy's dropout mode
        else:
            self.copy = copy.deepcopy(model).eval().requires_grad_(False)
        self.rebind()
        self.syncs = 0
        self.sync()

    def rebind(self) -> None:
        """Pair each snapshot tensor with its live tensor; again after sharding, which replaces the parameters."""
        self.pairs = self._adapter_pairs() if self.copy is None else list(zip(self.copy.parameters(), self.model.parameters()))

    def _adapter_pairs(self) -> list[tuple[Tensor, Tensor]]:
        """(snapshot tensor, live tensor) for every tensor of the trainable adapter."""
        params = dict(self.model.named_parameters())
        pairs = []
        for name, param in params.items():
            parts = name.split(".")
            if self.source in parts:
                twin = ".".join(self.ADAPTER if p == self.source else p for p in parts)
                if twin not in params:
                    raise RuntimeError(f"NLPO mask adapter has no tensor {twin} for {name}")
                pairs.append((params[twin], param))
        if not pairs:
            raise RuntimeError(f"adapter {self.source!r} has no tensors to snapshot")
        return pairs

    @torch.no_grad()
    def sync(self) -> None:
        """Copy the current policy into the snapshot."""
        for snapshot, live in self.pairs:
            # A sharded policy's weight against a whole copy's (full fine-tuning): gathered, on every process.
            snapshot.copy_(live.full_tensor() if isinstance(live, DTensor) and not isinstance(snapshot, DTensor) else live)
        self.syncs += 1

    @contextmanager
    def _active(self) -> Iterator[None]:
        """Run the shared model as the mask policy, restoring the adapter and every requires_grad flag."""
        flags = [(p, p.requires_grad) for p in self.model.parameters()]
        self.model.set_adapter(self.ADAPTER, inference_mode=True)
        try:
            yield
        finally:
            self.model.set_adapter(self.source)
            for param, flag in flags:
                param.requires_grad_(flag)

    def masker(self, query: Tensor, query_mask: Tensor, top_p: float, keep_ids: Sequence[int]) -> TopPMasker:
        """A step-by-step top-p masker for one batch of contexts, with its own KV cache."""
        if self.copy is not None:
            decoder = StepDecoder(self.copy, query, query_mask)
        else:
            decoder = StepDecoder(self.model, query, query_mask, context=self._active)
        return TopPMasker(decoder, top_p, tuple(keep_ids))

    def state_dict(self) -> dict[str, object]:
        return {"syncs": self.syncs, "tensors": [snapshot.detach().clone() for snapshot, _ in self.pairs]}

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, object]) -> None:
        tensors = state["tensors"]
        if len(tensors) != len(self.pairs):
            raise ValueError(f"NLPO mask snapshot has {len(tensors)} tensors, the policy {len(self.pairs)}")
        for (snapshot, _), saved in zip(self.pairs, tensors):
            snapshot.copy_(saved)
        self.syncs = int(state["syncs"])
