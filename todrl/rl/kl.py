"""KL penalty coefficients: a fixed one, or the adaptive one of Ziegler et al. (2019).

Seed 004 writes the coefficient β (Eq. 5), as it writes the penalty of Eq. 3;
here it is `kl_coef` throughout. Eq. 6-7 adapt it after every batch of rollouts:
``e_t = clip((KL - KL_target) / KL_target, -0.2, 0.2)`` and
``β_{t+1} = β_t * (1 + K_β * e_t)``, with β_0 = 0.01 and K_β = 0.2.
The state is saved with checkpoints so that a resumed run keeps its coefficient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class FixedKL:
    """A constant coefficient: the KL penalty never adapts."""

    kl_coef: float = 0.01

    def __post_init__(self) -> None:
        if self.kl_coef < 0:
            raise ValueError(f"kl_coef must be >= 0, got {self.kl_coef}")

    def update(self, kl: float) -> float:
        return self.kl_coef

    def state_dict(self) -> dict[str, float]:
        return asdict(self)

    def load_state_dict(self, state: dict[str, float]) -> None:
        names = {f.name for f in fields(self)}
        unknown = set(state) - names
        if unknown:
            raise ValueError(f"{type(self).__name__}.load_state_dict: unknown keys {sorted(unknown)}")
        for name, value in state.items():
            setattr(self, name, float(value))


@dataclass
class AdaptiveKL(FixedKL):
    """The coefficient grows when the policy drifts past ``target`` nats of KL and shrinks below it."""

    target: float = 1.0
    rate: float = 0.2
    """K_β; the proportional error is clipped to +-0.2, so the coefficient moves at most 4% per update at 0.2."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target <= 0:
            raise ValueError(f"adaptive KL target must be > 0, got {self.target}")

    def update(self, kl: float) -> float:
        error = min(max((kl - self.target) / self.target, -0.2), 0.2)
        self.kl_coef *= 1.0 + self.rate * error
        return self.kl_coef


def kl_controller(kl_coef: float, target: float | None, rate: float = 0.2) -> FixedKL:
    """An adaptive controller when a target KL is given, else a fixed coefficient."""
    return FixedKL(kl_coef) if target is None else AdaptiveKL(kl_coef=kl_coef, target=target, rate=rate)
