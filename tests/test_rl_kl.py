"""The KL controllers against seed 004 Eq. 6-7."""

from __future__ import annotations

import pytest

from todrl.rl.kl import AdaptiveKL, FixedKL, kl_controller


def test_adaptive_kl_coef_follows_eq_6_and_7():
    controller = AdaptiveKL(kl_coef=0.01, target=1.0, rate=0.2)
    # KL 2 is 100% over target: the error clips to +0.2, kl_coef *= 1 + 0.2 * 0.2
    assert controller.update(2.0) == pytest.approx(0.01 * 1.04)
    # KL 1.1: error 0.1, inside the clip
    assert controller.update(1.1) == pytest.approx(0.01 * 1.04 * 1.02)
    # KL 0: error -1 clips to -0.2
    assert controller.update(0.0) == pytest.approx(0.01 * 1.04 * 1.02 * 0.96)
    # on target: unchanged
    before = controller.kl_coef
    assert controller.update(1.0) == pytest.approx(before)


def test_fixed_kl_coef_never_moves():
    controller = FixedKL(kl_coef=0.05)
    assert controller.update(100.0) == 0.05
    assert controller.update(0.0) == 0.05


def test_state_dict_round_trip_restores_kl_coef():
    controller = AdaptiveKL(kl_coef=0.01, target=0.5)
    for kl in (1.0, 0.9, 2.0):
        controller.update(kl)
    restored = AdaptiveKL(kl_coef=0.01, target=0.5)
    restored.load_state_dict(controller.state_dict())
    assert restored == controller
    assert restored.update(0.7) == controller.update(0.7)
    with pytest.raises(ValueError, match="unknown keys"):
        FixedKL().load_state_dict({"kl_coef": 0.1, "target": 1.0})


def test_factory_and_validation():
    assert isinstance(kl_controller(0.01, None), FixedKL) and not isinstance(kl_controller(0.01, None), AdaptiveKL)
    assert isinstance(kl_controller(0.01, 1.0), AdaptiveKL)
    with pytest.raises(ValueError, match="target"):
        AdaptiveKL(kl_coef=0.01, target=0.0)
    with pytest.raises(ValueError, match="kl_coef"):
        FixedKL(kl_coef=-1.0)
