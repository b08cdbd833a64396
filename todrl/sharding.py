"""Sharded training: what SFT and RL do differently when `accelerate launch` splits the weights with FSDP2.

Under FSDP2 every process holds a slice of each weight and a forward pass
all-gathers them block by block: a forward is a collective, so every process
must make the same calls in the same order, and no process may run the model
alone.  The trainers therefore (1) gather the full state dict on every process
before the main one writes a checkpoint, (2) stop RL's sampling loop only when
no process has a sequence left, (3) let every process run the same greedy
generations, with `synced_gpus`, where unsharded runs use the main process
alone.  Nothing changes for a user: the same command runs under any
`--config_file`.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from accelerate import Accelerator, FullyShardedDataParallelPlugin, PartialState
from accelerate.utils import DistributedType
from torch import nn

from todrl.models import is_seq2seq
from todrl.rl.rollout import StopRule, all_finished

UNSHARDABLE_ADAPTERS = ("adalora", "sucg")


def make_accelerator(**kwargs: Any) -> Accelerator:
    """An `Accelerator`, sharded on CPUs too when launched with an FSDP config.

    accelerate 1.15 turns FSDP on only for GPU-like backends: on a machine
    without one (or with ACCELERATE_USE_CPU=true) its launcher starts N
    unconnected single processes.  Here such a launch joins the processes
    over gloo and enables the FSDP plugin that its config describes, which
    FSDP2 supports on CPU.
    """
    fsdp_on_cpu = flag("ACCELERATE_USE_FSDP") and (flag("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
    accelerator = Accelerator(cpu=fsdp_on_cpu, **kwargs)
    if fsdp_on_cpu and accelerator.distributed_type == DistributedType.MULTI_CPU:
        plugin = FullyShardedDataParallelPlugin()
        if accelerator.mixed_precision != "no":
            plugin.set_mixed_precision(accelerator.mixed_precision)
        PartialState().distributed_type = DistributedType.FSDP  # AcceleratorState re-reads it from here
        accelerator.state.distributed_type = DistributedType.FSDP
        accelerator.state.fsdp_plugin = plugin
    return accelerator


def flag(name: str) -> bool:
    return os.environ.get(name, "false").lower() in ("true", "1", "yes")


def is_sharded(accelerator: Accelerator) -> bool:
    return accelerator.distributed_type == DistributedType.FSDP


def check_sharding(accelerator: Accelerator, adapter: str, resume: bool, quantize: str) -> None:
    """Refuse, before any model is loaded, what sharded training cannot do."""
    if not is_sharded(accelerator):
        return
    if accelerator.state.fsdp_plugin.fsdp_version != 2:
        raise ValueError("todrl shards with FSDP2: set `fsdp_version: 2` in the accelerate config")
    if adapter in UNSHARDABLE_ADAPTERS:
        raise ValueError(f"adapter {adapter!r} cannot be sharded: its rank allocation masks and scores whole "
                         "adapter matrices on one process; use --adapter.type lora or full, or launch without FSDP")
    if resume:
        raise ValueError("--resume is not supported for sharded runs: their checkpoints hold the weights but not "
                         "the sharded optimizer state; start a new run from the checkpoint (--model)")
    if quantize != "none":
        raise ValueError("--quantize cannot be combined with sharding here; use one or the other")


def prepare_for_sharding(model: nn.Module) -> None:
    """T5 keeps separate embedding modules around one weight in its encoder and decoder; accelerate's FSDP2 puts
    the input embedding in a unit of its own, and FSDP2 refuses a weight seen by two units: one module serves all."""
    if not is_seq2seq(model):
        return
    embedding = model.get_input_embeddings()
    for stack in (model.get_encoder(), model.get_decoder()):
        if stack.embed_tokens is not embedding and stack.embed_tokens.weight is embedding.weight:
            stack.embed_tokens = embedding


def full_state_dict(accelerator: Accelerator, model: nn.Module) -> dict[str, torch.Tensor] | None:
    """The whole state dict on the main process of a sharded run (a collective: every process calls it);
    None when unsharded, where `save_pretrained` reads the model itself."""
    return accelerator.get_state_dict(model) if is_sharded(accelerator) else None


def stop_rule(accelerator: Accelerator) -> StopRule:
    """When the RL sampling loop may end: in a sharded run only once every process's sequences have ended."""
    if not is_sharded(accelerator):
        return all_finished

    def nobody_alive(alive: torch.Tensor) -> bool:
        return accelerator.reduce(alive.any().float().to(accelerator.device), reduction="sum").item() == 0

    return nobody_alive
