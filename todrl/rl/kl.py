"""KL penalty coefficients: a fixed beta, or the adaptive one of Ziegler et al. (2019).

Seed 004 (Eq. 6-7) adapts beta after every batch of rollouts:
``e_t = clip((KL - KL_target) / KL_target, -0.2, 0.2)`` and
``beta_{t+1} = beta_t * (1 + K_beta * e_t)``, with beta_0 = 0.01 and K_beta = 0.2.
The state is saved with checkpoints so that a resumed run keeps its beta.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class FixedKL:
    """A constant beta: the KL penalty never adapts."""

    beta: float = 0.01

    def __post_init__(self) -> None:
        if self.beta < 0:
            raise ValueError(f"KL beta must be >= 0, got {self.beta}")

    def update(self, kl: float) -> float:
        return self.beta

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
    """Beta grows when the policy drifts past ``target`` nats of KL and shrinks below it."""

    target: float = 1.0
    rate: float = 0.2
    """K_beta; the proportional error is clipped to +-0.2, so beta moves at most 4% per update at 0.2."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target <= 0:
            raise ValueError(f"adaptive KL target must be > 0, got {self.target}")

    def update(self, kl: float) -> float:
        error = min(max((kl - self.target) / self.target, -0.2), 0.2)
        self.beta *= 1.0 + self.rate * error
        return self.beta


def kl_controller(beta: float, target: float | None, rate: float = 0.2) -> FixedKL:
    """An adaptive controller when a target KL is given, else a fixed beta."""
    return FixedKL(beta) if target is None else AdaptiveKL(beta=beta, target=target, rate=rate)
