"""Telling a run that learned from one that did not: the checks behind a non-zero exit status.

A non-finite loss or gradient skips its update, and the run says so; but a run whose weights are no longer
finite cannot recover by skipping, and a run that skipped most of its updates learned little: both end as
`TrainingFailed` (exit status 1), with best/ left as it was, rather than as a success holding NaN checkpoints.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


class TrainingFailed(RuntimeError):
    """The run ended without a model worth keeping; best/ holds the last finite one, if any."""


def finite_weights(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)


def check_skipped(skipped: int, total: int, hint: str) -> None:
    """Fail a run that skipped more than half of its updates; report any skip."""
    if skipped and skipped * 2 > total:
        raise TrainingFailed(f"{skipped} of {total} updates were skipped for a non-finite loss or gradient; {hint}")
    if skipped:
        print(f"warning: {skipped} of {total} updates were skipped for a non-finite loss or gradient", file=sys.stderr)


def run_main(program: str, train: Callable[[Any], Any], config: Any) -> None:
    """Run a training entry point: a bad setting, file or directory is one line and exit status 2 (as a bad
    flag is), a failed run one line and status 1."""
    from todrl.models import ModelLoadError

    try:
        train(config)
    except TrainingFailed as error:
        print(f"{program}: {error}", file=sys.stderr)
        sys.exit(1)
    except (FileNotFoundError, ValueError, OSError, ModelLoadError) as error:
        print(f"{program}: {error}", file=sys.stderr)
        sys.exit(2)
