"""The resource line printed at the end of every run (the cost columns of seed 000's tables)."""

from __future__ import annotations

import resource
import sys
import time
from dataclasses import asdict, dataclass

import torch

from todrl.adapters import trainable_parameters


def peak_memory_mb() -> float:
    """Peak GPU memory allocated when on CUDA, else the process's peak resident set size.

    On Linux the peak is read from /proc (VmHWM): `getrusage`'s ru_maxrss carries the parent's peak across
    fork and exec, so a run started by a large process (a benchmark that built the model) would report that.
    """
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 2**10
    except (OSError, StopIteration):
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


@dataclass
class RunSummary:
    wall_seconds: float
    peak_memory_mb: float
    memory_kind: str
    trainable_params: int
    total_params: int

    def line(self) -> str:
        share = 100.0 * self.trainable_params / max(self.total_params, 1)
        return (
            f"wall time {self.wall_seconds:.1f} s | peak memory {self.peak_memory_mb:.0f} MiB ({self.memory_kind}) | "
            f"trainable parameters {self.trainable_params:,} of {self.total_params:,} ({share:.2f}%)"
        )

    def as_dict(self) -> dict:
        return asdict(self)


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    def summary(self, model: torch.nn.Module) -> RunSummary:
        trainable, total = trainable_parameters(model), sum(p.numel() for p in model.parameters())
        kind = "GPU allocated" if torch.cuda.is_available() and torch.cuda.is_initialized() else "CPU peak RSS"
        return RunSummary(time.perf_counter() - self.start, peak_memory_mb(), kind, trainable, total)
