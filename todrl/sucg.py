"""SUCG: AdaLoRA's importance of a singular value, measured inside random coalitions (seed 000, Sec. 4.2).

AdaLoRA scores a singular value lambda_i by |lambda_i * dL/dlambda_i| at the
current weights, i.e. with every other triplet present. SUCG zeroes each
singular value with probability 0.5 (X_i ~ Bernoulli(0.5), lambda' = X * lambda,
Eq. 11-12) and uses the expected gradient E[grad_lambda L(lambda')] =
0.5 * E[grad_lambda' L(lambda')] (Eq. 13), averaged over `repeats` independent
draws. Averaging the gradient over draws where lambda_i itself is on and off
makes |lambda_i * expected gradient| a first-order estimate of lambda_i's mean
marginal contribution to a random half of the other triplets (a Banzhaf value,
a Shapley-like share) instead of its contribution to the full set. The
constant 0.5 is kept as the paper writes it: it weighs singular values against
the P/Q scores that `mask_to_budget` adds to them.

What changes and what does not:
- Only the singular values (lora_E) get the coalition score. P and Q (lora_A,
  lora_B) keep AdaLoRA's |p * grad| from the training step: zeroing lambda_i
  makes the gradients of P_i and Q_i exactly zero, so masked passes would
  only halve their scores at random.
- The EMAs of Eq. 5-9 (sensitivity, uncertainty, their product) are PEFT's,
  fed with the SUCG sensitivity in place of |lambda * grad|.
- When the extra passes run (`every`): "allocation" scores only the steps on
  which AdaLoRA allocates ranks (every deltaT-th step of the budget phase and
  the final allocation), and the EMAs advance on those steps only, so t in
  Eq. 5-9 counts scorings. Mixing in plain AdaLoRA scores between them would
  make the score mostly AdaLoRA's (the latest term weighs 1 - beta1) and turn
  the jump between the two estimators into "uncertainty". The cost is
  `repeats` forward/backward passes every deltaT steps. "step" scores every
  step up to the final allocation, as AdaLoRA does (t = training step), at
  `repeats` extra passes per step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from peft.tuners.adalora.layer import RankAllocator
from torch import nn

LossClosure = Callable[[], torch.Tensor]


def sample_coalitions(
    singular_values: Mapping[str, torch.Tensor], repeats: int, generator: torch.Generator
) -> list[dict[str, torch.Tensor]]:
    """`repeats` independent masks X ~ Bernoulli(0.5), one entry per singular value (Eq. 11).

    Drawn on the CPU from `generator`, in the order of `singular_values`, so a
    seed fixes them whatever the device.
    """
    coalitions = []
    for _ in range(repeats):
        coalitions.append(
            {
                name: torch.bernoulli(torch.full(tuple(value.shape), 0.5), generator=generator).to(
                    device=value.device, dtype=value.dtype
                )
                for name, value in singular_values.items()
            }
        )
    return coalitions


def expected_gradient(
    loss_closure: LossClosure,
    singular_values: Mapping[str, nn.Parameter],
    coalitions: Sequence[Mapping[str, torch.Tensor]],
) -> dict[str, torch.Tensor]:
    """0.5 * mean over coalitions X of grad_{lambda'} L(lambda'), lambda' = X * lambda (Eq. 12-13).

    Each coalition writes X * lambda into the parameters for one forward and
    backward pass; the original values are restored afterwards, even on error.
    Gradients are taken with `torch.autograd.grad`, so `.grad` of every
    parameter is left as the training step made it.
    """
    if not coalitions:
        raise ValueError("expected_gradient needs at least one coalition")
    params = list(singular_values.values())
    originals = [p.detach().clone() for p in params]
    totals = [torch.zeros_like(p) for p in params]
    try:
        for coalition in coalitions:
            with torch.no_grad():
                for (name, param), original in zip(singular_values.items(), originals):
                    param.copy_(original * coalition[name])
            with torch.enable_grad():
                loss = loss_closure()
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
                raise ValueError(
                    "loss_closure must return the scalar loss of the current batch with its graph, got "
                    f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}"
                )
            grads = torch.autograd.grad(loss, params, allow_unused=True)
            for name, grad, total in zip(singular_values, grads, totals):
                if grad is None:
                    raise RuntimeError(f"{name} does not take part in the loss of loss_closure")
                total += grad
    finally:
        with torch.no_grad():
            for param, original in zip(params, originals):
                param.copy_(original)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Each process saw its own batch: average, so every process allocates the same ranks (the seeded
        # coalitions are already the same everywhere).
        for total in totals:
            torch.distributed.all_reduce(total)
            total /= torch.distributed.get_world_size()
    return {name: 0.5 * total / len(coalitions) for name, total in zip(singular_values, totals)}


class SUCGRankAllocator(RankAllocator):
    """PEFT's RankAllocator with the singular values scored by SUCG; swapped into `AdaLoraModel.rankallocator`.

    The caller sets `loss_closure` before `update_and_allocate` on the steps
    this allocator scores (`scores_at`); budget schedule and masking are PEFT's.
    """

    def __init__(self, model: nn.Module, peft_config, adapter_name: str, repeats: int, every: str, seed: int):
        super().__init__(model, peft_config, adapter_name)
        if repeats < 1:
            raise ValueError(f"SUCG needs repeats >= 1, got {repeats}")
        if every not in ("allocation", "step"):
            raise ValueError(f"SUCG every must be 'allocation' or 'step', got {every!r}")
        self.repeats = repeats
        self.every = every
        self.generator = torch.Generator().manual_seed(seed)
        self.loss_closure: LossClosure | None = None

    def scores_at(self, global_step: int) -> bool:
        """Whether this step updates the importance (and so runs the extra passes)."""
        final_step = self.peft_config.total_step - self.peft_config.tfinal
        if global_step > final_step:
            return False
        if global_step == final_step or self.every == "step":
            return True
        _, allocates = self.budget_schedule(global_step)
        return allocates

    def update_and_allocate(self, model: nn.Module, global_step: int, force_mask: bool = False):
        if self.scores_at(global_step):
            self.update_ipt(model)
        budget, allocates = self.budget_schedule(global_step)
        rank_pattern = self.mask_to_budget(model, budget) if allocates or force_mask else None
        return budget, rank_pattern

    def update_ipt(self, model: nn.Module) -> None:
        """PEFT's EMA update with the expected gradient standing in for the singular values' gradient."""
        if self.loss_closure is None:
            raise ValueError(
                "SUCG scores this step with extra forward/backward passes: pass loss_closure (recomputing the "
                "current batch's loss) to after_optimizer_step"
            )
        singular_values = {
            name: param for name, param in model.named_parameters() if f"lora_E.{self.adapter_name}" in name
        }
        coalitions = sample_coalitions(singular_values, self.repeats, self.generator)
        expected = expected_gradient(self.loss_closure, singular_values, coalitions)
        step_grads = {name: param.grad for name, param in singular_values.items()}
        try:
            for name, param in singular_values.items():
                param.grad = expected[name]
            super().update_ipt(model)
        finally:
            for name, param in singular_values.items():
                param.grad = step_grads[name]
