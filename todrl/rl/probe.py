"""What the dev-slice analysis scripts (scripts/inform_failures.py, request_coverage.py, perturbation_baseline.py)
share: checkpoints to compare, and the RL config whose dev dialogues they are scored on."""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from todrl.config import parse_config
from todrl.data.records import Dialogue
from todrl.rl.build import contexts
from todrl.rl.config import RLConfig


def probe_parser(doc: str, checkpoints: str = "+") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("checkpoints", nargs=checkpoints, type=Path, help="checkpoint directories (best/ or last/)")
    parser.add_argument("--config", required=True, help="RL config naming the data, the SFT model and the dev split")
    return parser


def probe_setup(args: argparse.Namespace) -> tuple[RLConfig, list[Dialogue]]:
    """The config and its dev dialogues, with one torch thread so that the figures repeat exactly."""
    torch.set_num_threads(1)
    cfg = parse_config(RLConfig, ["--config", args.config])
    return cfg, contexts(cfg)[1]
