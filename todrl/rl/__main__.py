"""`python -m todrl.rl --reward tod`: PPO/NLPO on top of the latest SFT checkpoint (see todrl.rl.trainer)."""

from __future__ import annotations

from todrl.config import parse_config
from todrl.health import run_main
from todrl.rl.config import RLConfig
from todrl.rl.trainer import train


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(RLConfig, argv, description=RLConfig.__doc__)
    run_main("todrl.rl", train, cfg)


if __name__ == "__main__":
    main()
