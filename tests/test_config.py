from dataclasses import dataclass, field

import pytest

from todrl.adapters import AdapterConfig
from todrl.config import parse_config
from todrl.sft import SFTConfig


@dataclass
class Inner:
    type: str = "lora"
    r: int = 8
    targets: list[str] | None = None


@dataclass
class Outer:
    model: str = "tiny"
    train_fraction: float = 1.0
    resume: bool = False
    inner: Inner = field(default_factory=Inner)


def test_flags_override_yaml_which_overrides_defaults(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("model: from-yaml\ntrain_fraction: 0.5\ninner:\n  r: 4\n")
    cfg = parse_config(Outer, ["--config", str(path), "--train-fraction", "0.1", "--inner.targets", "q,k"])
    assert cfg == Outer(model="from-yaml", train_fraction=0.1, inner=Inner(r=4, targets=["q", "k"]))


def test_nested_type_shortcut_and_boolean_switch():
    cfg = parse_config(Outer, ["--inner", "sucg", "--resume"])
    assert cfg.inner.type == "sucg" and cfg.inner.r == 8 and cfg.resume is True
    assert parse_config(Outer, ["--resume", "no"]).resume is False


def test_bad_values_and_unknown_keys_are_named(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_config(Outer, ["--train-fraction", "lots"])
    assert "train_fraction" in capsys.readouterr().err
    path = tmp_path / "bad.yaml"
    path.write_text("modle: typo\n")
    with pytest.raises(SystemExit):
        parse_config(Outer, ["--config", str(path)])
    err = capsys.readouterr().err
    assert "modle" in err and "bad.yaml" in err


def test_every_shipped_sft_config_parses():
    from pathlib import Path

    configs = sorted(Path(__file__).resolve().parents[1].glob("configs/sft_*.yaml"))
    assert configs
    for path in configs:
        cfg = parse_config(SFTConfig, ["--config", str(path)])
        assert isinstance(cfg.adapter, AdapterConfig)
