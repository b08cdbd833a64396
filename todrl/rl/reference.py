"""pi_0: the frozen starting point that the KL penalty measures the policy against.

With adapters it costs no memory: the reference is the same base model with
the adapters switched off.  Only full fine-tuning needs a frozen copy.
"""

from __future__ import annotations

import copy

import torch
from peft import PeftModel
from torch import Tensor, nn

from todrl.rl.ppo import token_log_probs
from todrl.rl.rollout import score


class Reference:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.copy = None if isinstance(model, PeftModel) else copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def log_probs(self, query: Tensor, query_mask: Tensor, response: Tensor, response_mask: Tensor) -> Tensor:
        """log pi_0 of each response token, under the reference's full (unmasked) distribution."""
        if self.copy is not None:
            logits, _ = score(self.copy, query, query_mask, response, response_mask, with_hidden=False)
        else:
            with self.model.disable_adapter():
                logits, _ = score(self.model, query, query_mask, response, response_mask, with_hidden=False)
        return token_log_probs(logits, response)
