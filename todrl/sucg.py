"""SUCG: AdaLoRA's importance of a singular value, measured inside random coalitions (seed 000, Sec. 4.2).

AdaLoRA scores a singular value lambda_i by |lambda_i * dL/dlambda_i| at the
current weights, i.e. with every other triplet present. SUCG zeroes each
singular value with probability 0.5 (X_i ~ Bernoulli(0.5), lambda' = X * lambda,
Eq. 11-12) and uses the expected gradient 0.5 * E_X[grad_lambda' L(lambda')]
(Eq. 13). Averaging the gradient over draws where lambda_i itself is on and off
makes |lambda_i * expected gradient| a first-order estimate of lambda_i's mean
marginal contribution to a random half of the other triplets (a Banzhaf value,
a Shapley-like share) instead of its contribution to the full set. The
constant 0.5 is kept as the paper writes it: it weighs singular values against
the P/Q scores that `mask_to_budget` adds to them.

How the expectation is estimated: one coalition per row of the batch, all in
one forward/backward pass. Forward hooks give row b of every AdaLoRA layer its
own lambda'_b = X_b * lambda, and the gradient w.r.t. these per-row values,
summed over the rows, has the expectation E_X[grad L(lambda')] whenever the
loss is a sum of per-row terms (a mean over rows or tokens with weights fixed
by the data, as the SFT cross-entropy and the PPO losses are): each row's term
sees one coalition drawn from the same distribution. So it is an unbiased
Monte-Carlo estimate of the same quantity as `repeats` full-batch passes with
one shared coalition each (the paper's 5 repetitions), over more coalitions (one
per row) and at the cost of one pass; passes are added only when the batch has
fewer rows than `repeats`. Only the per-row singular values are differentiated:
backward skips P, Q and the frozen weights.

What changes and what does not:
- Only the singular values (lora_E) get the coalition score. P and Q (lora_A,
  lora_B) keep AdaLoRA's |p * grad| from the training step: zeroing lambda_i
  makes the gradients of P_i and Q_i exactly zero, so masked passes would
  only halve their scores at random.
- The EMAs of Eq. 5-9 (sensitivity, uncertainty, their product) are PEFT's,
  fed with the SUCG sensitivity in place of |lambda * grad|.
- When the extra pass runs (`every`): "allocation" scores only the steps on
  which AdaLoRA allocates ranks (every deltaT-th step of the budget phase and
  the final allocation), and the EMAs advance on those steps only, so t in
  Eq. 5-9 counts scorings. Mixing in plain AdaLoRA scores between them would
  make the score mostly AdaLoRA's (the latest term weighs 1 - beta1) and turn
  the jump between the two estimators into "uncertainty". The cost is one
  forward/backward pass every deltaT steps. "step" scores every step up to the
  final allocation, as AdaLoRA does (t = training step), at one extra pass per
  step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

import torch
from peft.tuners.adalora.layer import AdaLoraLayer, RankAllocator
from torch import nn

LossClosure = Callable[[], torch.Tensor]
Draw = Callable[[str, int, int], torch.Tensor]
"""(name of a layer's singular values, rows, rank) -> a (rows, rank) mask of zeros and ones."""


def bernoulli_draw(generator: torch.Generator) -> Draw:
    """Independent X ~ Bernoulli(0.5) per row and singular value (Eq. 11).

    Drawn on the CPU from `generator` in the order the layers run, so a seed
    fixes them whatever the device.
    """

    def draw(name: str, rows: int, rank: int) -> torch.Tensor:
        return torch.bernoulli(torch.full((rows, rank), 0.5), generator=generator)

    return draw


def expected_gradient(
    loss_closure: LossClosure, layers: Mapping[str, AdaLoraLayer], adapter: str, coalitions: int, draw: Draw
) -> dict[str, torch.Tensor]:
    """0.5 * E_X[grad_{lambda'} L(lambda')] (Eq. 12-13) per layer, one coalition per row, at least `coalitions`.

    `layers` maps the name of each layer's singular values to the layer; the
    result has the shape of those values. Their original values are restored
    afterwards, even on error. Gradients are taken with `torch.autograd.grad`,
    so `.grad` of every parameter is left as the training step made it.
    """
    if coalitions < 1:
        raise ValueError(f"expected_gradient needs at least one coalition, got {coalitions}")
    totals: dict[str, torch.Tensor] = {}
    passes, done = 1, 0
    while done < passes:
        rows, grads = _row_gradients(loss_closure, layers, adapter, draw)
        if done == 0:
            passes = _agreed_passes(math.ceil(coalitions / rows))
        for name, grad in grads.items():
            totals[name] = totals.get(name, 0) + grad
        done += 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        # Each process saw its own batch: average, so every process allocates the same ranks.
        for total in totals.values():
            torch.distributed.all_reduce(total)
            total /= torch.distributed.get_world_size()
    return {name: 0.5 * total / passes for name, total in totals.items()}


def _row_gradients(
    loss_closure: LossClosure, layers: Mapping[str, AdaLoraLayer], adapter: str, draw: Draw
) -> tuple[int, dict[str, torch.Tensor]]:
    """One pass with a coalition per row: (rows, sum over rows of dL/dlambda'_b per layer)."""
    with _row_coalitions(layers, adapter, draw) as per_row:
        with torch.enable_grad():
            loss = loss_closure()
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0 or not loss.requires_grad:
            raise ValueError(
                "loss_closure must return the scalar loss of the current batch with its graph, got "
                f"{type(loss).__name__}{'' if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}"
            )
        missing = [name for name in layers if name not in per_row]
        if missing:
            raise RuntimeError(f"{missing[0]} does not take part in the loss of loss_closure")
        grads = torch.autograd.grad(loss, [per_row[name] for name in layers], allow_unused=True)
    sums = {}
    for (name, layer), grad in zip(layers.items(), grads):
        if grad is None:
            raise RuntimeError(f"{name} does not take part in the loss of loss_closure")
        sums[name] = grad.sum(dim=0).view_as(layer.lora_E[adapter])
    return next(iter(per_row.values())).shape[0], sums


@contextmanager
def _row_coalitions(layers: Mapping[str, AdaLoraLayer], adapter: str, draw: Draw) -> Iterator[dict[str, torch.Tensor]]:
    """Row b of each layer computes with its own lambda'_b = X_b * lambda: yields the (rows, rank) leaves.

    PEFT's own adapter term is silenced by zeroing lambda, and a forward hook
    adds the per-row one; a leaf is made when its layer first runs (a layer
    run again, e.g. by gradient checkpointing or a second forward in the loss,
    reuses it, so a row keeps its coalition).
    """
    per_row: dict[str, torch.Tensor] = {}
    originals = {name: layer.lora_E[adapter].detach().clone() for name, layer in layers.items()}

    def hook_for(name: str) -> Callable:
        def hook(layer: AdaLoraLayer, args: tuple, kwargs: dict, output: torch.Tensor) -> torch.Tensor:
            if layer.disable_adapters or layer.merged or adapter not in layer.active_adapters:
                return output  # PEFT's forward leaves the adapter out: so does its per-row stand-in
            x = args[0] if args else kwargs["x"]
            rows = x.shape[0]
            seen = next(iter(per_row.values()), None)
            if seen is not None and seen.shape[0] != rows:
                raise ValueError(
                    f"{name} ran on {rows} rows, the pass so far on {seen.shape[0]}: SUCG gives each row of the "
                    "batch its own coalition, so every adapted layer must take the batch's rows as dimension 0"
                )
            if name not in per_row:
                mask = draw(name, rows, originals[name].numel()).to(originals[name].device, originals[name].dtype)
                per_row[name] = (mask * originals[name].view(1, -1)).requires_grad_()
            lam = per_row[name].view(rows, *([1] * (x.dim() - 2)), -1)
            lora_A, lora_B = layer.lora_A[adapter], layer.lora_B[adapter]
            scale = layer.scaling[adapter] / (layer.ranknum[adapter] + 1e-5)
            update = (layer.lora_dropout[adapter](x.to(lora_A.dtype)) @ lora_A.T * lam) @ lora_B.T * scale
            return output + update.to(output.dtype)

        return hook

    handles = [layer.register_forward_hook(hook_for(name), with_kwargs=True) for name, layer in layers.items()]
    try:
        with torch.no_grad():
            for layer in layers.values():
                layer.lora_E[adapter].zero_()
        yield per_row
    finally:
        for handle in handles:
            handle.remove()
        with torch.no_grad():
            for name, layer in layers.items():
                layer.lora_E[adapter].copy_(originals[name])


def _agreed_passes(passes: int) -> int:
    """The most passes any process needs: every process must run as many forward passes (sharded weights)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return passes
    count = torch.tensor(passes)
    torch.distributed.all_reduce(count, op=torch.distributed.ReduceOp.MAX)
    return int(count)


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
        self.draw = bernoulli_draw(torch.Generator().manual_seed(seed))
        self.loss_closure: LossClosure | None = None

    def scores_at(self, global_step: int) -> bool:
        """Whether this step updates the importance (and so runs the extra pass)."""
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
                "SUCG scores this step with an extra forward/backward pass: pass loss_closure (recomputing the "
                "current batch's loss) to after_optimizer_step"
            )
        layers = {
            f"{name}.lora_E.{self.adapter_name}": module
            for name, module in model.named_modules()
            if isinstance(module, AdaLoraLayer) and self.adapter_name in module.lora_E
        }
        expected = expected_gradient(self.loss_closure, layers, self.adapter_name, self.repeats, self.draw)
        singular_values = [layer.lora_E[self.adapter_name] for layer in layers.values()]
        step_grads = [param.grad for param in singular_values]
        try:
            for name, param in zip(layers, singular_values):
                param.grad = expected[name]
            super().update_ipt(model)
        finally:
            for param, grad in zip(singular_values, step_grads):
                param.grad = grad
