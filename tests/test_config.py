import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from todrl.adapters import AdapterConfig
from todrl.config import parse_config
from todrl.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    """The inner part."""

    type: Literal["lora", "sucg"] = "lora"
    """Which inner method."""
    r: int = 8
    targets: list[str] | None = None
    """Modules to adapt."""


@dataclass
class Outer:
    model: str = "tiny"
    """Model to start from."""
    train_fraction: float = 1.0
    resume: bool = False
    inner: Inner = field(default_factory=Inner)
    """Trainable part."""


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
    configs = sorted(ROOT.glob("configs/sft_*.yaml"))
    assert configs
    for path in configs:
        cfg = parse_config(SFTConfig, ["--config", str(path)])
        assert isinstance(cfg.adapter, AdapterConfig)


def help_entries(text: str) -> dict[str, tuple[str, str]]:
    """First flag -> (its invocation, its description with whitespace collapsed), read from argparse's layout."""
    entries: dict[str, tuple[str, str]] = {}
    current = None
    for line in text.splitlines():
        if line.startswith("  --"):
            invocation, _, description = line.strip().partition("  ")
            current = invocation.split()[0].rstrip(",")
            entries[current] = (invocation, description.strip())
        elif current and line.startswith("   "):
            invocation, description = entries[current]
            entries[current] = (invocation, f"{description} {line.strip()}".strip())
        else:
            current = None
    return entries


def help_of(cls: type, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        parse_config(cls, ["--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_help_shows_docstring_default_and_choices(capsys):
    entries = help_entries(help_of(Outer, capsys))
    assert entries["--model"] == ("--model TEXT", "Model to start from. (default: tiny)")
    assert entries["--inner"] == ("--inner {lora,sucg}, --inner.type {lora,sucg}",
                                  "Trainable part. type: Which inner method. (default: lora)")
    assert entries["--inner.targets"] == ("--inner.targets TEXT,...|none", "Modules to adapt. (default: none)")
    assert entries["--resume"] == ("--resume [yes|no]", "(default: no)")
    assert "--train_fraction" not in entries  # accepted (the first test), listed once with dashes


def test_nested_defaults_come_from_the_parent_field(capsys):
    """SFT's adapter defaults to full fine-tuning although AdapterConfig's own default type is lora."""
    entries = help_entries(help_of(SFTConfig, capsys))
    assert entries["--adapter"][0] == "--adapter {full,lora,adalora,sucg}, --adapter.type {full,lora,adalora,sucg}"
    assert entries["--adapter"][1].endswith("(default: full)")
    assert entries["--mixed-precision"] == ("--mixed-precision {no,fp16,bf16}",
                                            "Mixed-precision training through accelerate (float32 weights, autocast "
                                            "activations). (default: no)")
    assert [flag for flag, (_, description) in entries.items() if description.startswith("(default:")] == []


def test_literal_choices_are_enforced(capsys):
    with pytest.raises(SystemExit):
        parse_config(Outer, ["--inner", "prefix"])
    assert "'prefix' is not one of lora, sucg" in capsys.readouterr().err
    with pytest.raises(ValueError, match="task must be one of e2e, dst, dst-cot, got 'rl'"):
        SFTConfig(task="rl")
    with pytest.raises(ValueError, match="mixed_precision must be one of no, fp16, bf16, got 'fp8'"):
        SFTConfig(mixed_precision="fp8")


@pytest.mark.slow
def test_rl_help_documents_every_option():
    """What a user types first: every option has its description, default and, where it has them, choices."""
    result = subprocess.run([sys.executable, "-m", "todrl.rl", "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m todrl.rl ")
    entries = help_entries(result.stdout)
    invocation, description = entries["--reward"]
    assert invocation.startswith("--reward {tod,understanding,generation,none}")
    assert "none (no task reward: the KL penalty and any SFT term alone" in description
    assert description.endswith("(default: tod)")
    invocation, description = entries["--adapter.sucg-every"]
    assert invocation == "--adapter.sucg-every {allocation,step}"
    assert description.startswith("allocation: SUCG scores only the steps that allocate ranks")
    assert description.endswith("(default: allocation)")
    assert entries["--adapter.target-r"] == (
        "--adapter.target-r INT", "AdaLoRA's final average rank: the budget is target_r * number of adapted matrices. (default: 8)"
    )
    assert entries["--adapter"][1].endswith("(default: lora)")  # RLConfig's own default (SFT's is full)
    assert len(entries) > 40
    assert [flag for flag, (_, description) in entries.items() if description.startswith("(default:")] == []


def test_evaluate_takes_a_config_file(tmp_path, capsys):
    from todrl.evaluate.cli import parse_args

    path = tmp_path / "eval.yaml"
    path.write_text("dataset: incar\nbatch_size: 8\njson: true\npredictions: preds.json\n")
    args = parse_args(["--config", str(path), "--batch-size", "4"])
    assert (args.dataset, args.batch_size, args.json, args.predictions, args.split) == ("incar", 4, True, Path("preds.json"), "test")
    for text, named in (("datset: incar\n", "unknown field(s) datset"), ("dataset: woz\n", "dataset must be one of multiwoz21, incar, sgd"),
                        ("batch_size: lots\n", "batch_size must be of type int")):
        path.write_text(text)
        with pytest.raises(SystemExit):
            parse_args(["--config", str(path), "--predictions", "preds.json"])
        err = capsys.readouterr().err
        assert named in err and "eval.yaml" in err
