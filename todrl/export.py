"""`python -m todrl.export --checkpoint X --output DIR [--merge]`: a checkpoint as a directory to share or push to the Hub.

A run's checkpoint needs its run (an adapter names the run's `../base`) and
carries resume state. The export is self-contained: the adapter merged into
its base (`--merge`), else the adapter with its base in `base/`; the tokenizer;
and a model card. Plain transformers or PEFT load it, and
`huggingface_hub.upload_folder` pushes it as it is.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from peft import PeftModel

from todrl.checkpoint import atomic_directory
from todrl.config import parse_config
from todrl.model_card import RunRecord, model_card
from todrl.models import ModelLoadError, adapter_base, link_base, load_merged, load_policy
from todrl.rl.build import sft_checkpoint

BASE = "base"


@dataclass
class ExportConfig:
    """Write a todrl checkpoint as a self-contained model directory with a model card (README.md)."""

    checkpoint: str
    """Checkpoint directory, or a run directory (its best/, else last/)."""
    output: str
    """Directory to create; it must not exist or be empty."""
    merge: bool = False
    """Fold an adapter into its base: one plain transformers model that decodes at the base model's cost."""

    def command(self) -> str:
        return shlex.join(["python", "-m", "todrl.export", "--checkpoint", self.checkpoint, "--output", self.output,
                           *(["--merge"] if self.merge else [])])


def export(cfg: ExportConfig) -> Path:
    """Write the export; returns its directory."""
    if not Path(cfg.checkpoint).is_dir():
        raise FileNotFoundError(f"--checkpoint {cfg.checkpoint}: no such directory")
    checkpoint = Path(sft_checkpoint(cfg.checkpoint))
    output = Path(cfg.output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise FileExistsError(f"--output {output}: exists and is not an empty directory; choose a new one")
    record = RunRecord.of(checkpoint)
    model, tokenizer = load_merged(checkpoint) if cfg.merge else load_policy(checkpoint)
    adapter = isinstance(model, PeftModel)
    with atomic_directory(output) as scratch:
        if adapter:
            base, base_tokenizer = load_policy(adapter_base(checkpoint))
            base.save_pretrained(scratch / BASE)
            base_tokenizer.save_pretrained(scratch / BASE)
            link_base(model, scratch / BASE, scratch)
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / "README.md").write_text(model_card(record, output.name, model, adapter, cfg.command()))
    return output


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(ExportConfig, argv, description=ExportConfig.__doc__)
    try:
        output = export(cfg)
    except (OSError, ValueError, ModelLoadError) as err:
        sys.exit(f"todrl.export: {err}")
    print(f"exported {cfg.checkpoint} to {output}" + (" (adapter merged)" if cfg.merge else ""))


if __name__ == "__main__":
    main()
