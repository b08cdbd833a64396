"""`python -m todrl.rl --reward tod`: PPO/NLPO on top of the latest SFT checkpoint (see todrl.rl.trainer)."""

from __future__ import annotations

import sys

from todrl.config import parse_config
from todrl.models import ModelLoadError
from todrl.rl.config import RLConfig
from todrl.rl.trainer import train


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(RLConfig, argv, description=RLConfig.__doc__)
    try:
        train(cfg)
    except (FileNotFoundError, ValueError, OSError, ModelLoadError) as err:
        sys.exit(f"todrl.rl: {err}")


if __name__ == "__main__":
    main()
