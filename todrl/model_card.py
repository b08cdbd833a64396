"""The model card (README.md) of an exported checkpoint: Hub metadata, then how the model was made and how it scored.

Everything is read from what the run left behind (the checkpoint's state, the
run's config.yaml, summary.json and test_scores.json), so a card can be made
long after training. The Hub rejects a push whose `base_model` is not a Hub
model, so it is set only when the run's lineage starts from one.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from todrl.checkpoint import STATE_FILE
from todrl.data.splits import DataConfig
from todrl.format import PREFIXES
from todrl.rl.config import RLConfig
from todrl.sft import SFTConfig

ENTRY_POINTS: dict[str, type] = {"todrl.sft": SFTConfig, "todrl.rl": RLConfig}
"""The command behind a run is the entry point whose config takes every key of the run's config."""

_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
_TASK_TARGETS = {"e2e": "<sos_b> ... <eos_b> <sos_a> ... <eos_a> <sos_r> ... <eos_r>", "dst": "<sos_b> ... <eos_b>",
                 "dst-cot": "<sos_f> [intention] [domain] slot value ... <eos_f> rationale` (stage 1; stage 2 reads "
                            "that appended to its input and writes `<sos_b> ... <eos_b>"}
_TASK_OUTPUTS = {"e2e": "the belief state, the dialogue act and the delexicalized system response in one sequence",
                 "dst": "the belief state",
                 "dst-cot": "the user turn's formal representation and a rationale, then the belief state (todrl.cot)"}


def _read(path: Path, parse: Callable[[str], Any]) -> Any:
    """A run file, or None when absent; a damaged one is an error naming it."""
    if not path.is_file():
        return None
    try:
        return parse(path.read_text())
    except (ValueError, yaml.YAMLError) as err:
        raise ValueError(f"{path}: cannot be read ({err})") from err


@dataclass
class RunRecord:
    """What a checkpoint's run recorded about it."""

    checkpoint: Path
    config: dict[str, Any]
    summary: dict[str, Any] | None
    test_scores: dict[str, Any] | None

    @classmethod
    def of(cls, checkpoint: Path) -> RunRecord:
        """Run files are read from the checkpoint's parent only when that is a todrl run (it holds config.yaml)."""
        run = checkpoint.parent if (checkpoint.parent / "config.yaml").is_file() else None
        state = _read(checkpoint / STATE_FILE, json.loads) or {}
        config = state.get("config") or (run and _read(run / "config.yaml", yaml.safe_load)) or {}
        summary = run and _read(run / "summary.json", json.loads)
        scores = run and _read(run / "test_scores.json", json.loads)
        return cls(checkpoint, config, summary, scores)

    @property
    def entry_point(self) -> str | None:
        fits = [name for name, cls in ENTRY_POINTS.items()
                if self.config and set(self.config) <= {f.name for f in dataclasses.fields(cls)}]
        return fits[0] if len(fits) == 1 else None


def hub_origin(config: dict[str, Any]) -> str | None:
    """The Hub model a chain of runs (RL on SFT on a pretrained model) started from, None for a preset or local model."""
    seen: set[Path] = set()
    while config:
        model = str(config.get("model", ""))
        path = Path(model)
        if not path.exists():
            return model if _HUB_ID.fullmatch(model) and not model.startswith(".") else None
        run = (path if (path / "config.yaml").is_file() else path.parent).resolve()
        if run in seen:
            return None
        seen.add(run)
        config = _read(run / "config.yaml", yaml.safe_load) or {}
    return None


def _scalars(values: dict[str, Any]) -> list[str]:
    rows = [f"| {key} | {round(value, 4) if isinstance(value, float) else value} |" for key, value in values.items()
            if not isinstance(value, (dict, list))]
    return ["| | |", "|---|---|", *rows] if rows else []


def _tables(values: dict[str, Any]) -> list[str]:
    """The scalars in one table, then a table per nested mapping (an evaluator's scores, a dev evaluation)."""
    lines = _scalars(values)
    for section, inner in values.items():
        if isinstance(inner, dict) and _scalars(inner):
            lines += ["", f"**{section}**", "", *_scalars(inner)]
    return lines


def _scores(scores: dict[str, Any], checkpoint: Path) -> list[str]:
    scored = Path(str(scores.get("checkpoint", checkpoint))).name
    return [f"From the run's `test_scores.json` (checkpoint `{scored}/`"
            + (", not the one exported)." if scored != checkpoint.name else ")."), "", *_tables(scores)]


def _usage(name: str, seq2seq: bool, adapter: bool, task: str) -> list[str]:
    """Loading code; an adapter's base is loaded by path because transformers reads the adapter's folder as the adapter."""
    auto = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
    load = ([f'base = {auto}.from_pretrained(f"{{where}}/base")', "model = PeftModel.from_pretrained(base, where)"]
            if adapter else [f"model = {auto}.from_pretrained(where)"])
    source = (f'huggingface_hub.snapshot_download("<user>/{name}")' if adapter else f'"<user>/{name}"')
    return [
        "```python",
        f"from transformers import AutoTokenizer, {auto}" + ("\nfrom peft import PeftModel" if adapter else ""),
        "",
        f'where = "{name}"  # this directory; from the Hub: {source}',
        "tokenizer = AutoTokenizer.from_pretrained(where)",
        *load,
        "```",
        "",
        f"Input: `{PREFIXES[task]} : u_(t-1) : bs_(t-1) : da_(t-1) : sr_(t-1) : u_t` (the previous turn's user utterance, "
        "belief state, act and delexicalized response, empty at the first turn, then the user utterance). Output, "
        f"greedy: `{_TASK_TARGETS[task]}`. Corpora without acts (In-Car) have no act field or span. The markers are "
        "ordinary tokens, so `decode(..., skip_special_tokens=True)` keeps them; they absorb the spaces around them, "
        "which `todrl.format.clean_generation` puts back.",
    ]


def model_card(record: RunRecord, name: str, model: Any, adapter: bool, command: str) -> str:
    """README.md of an export named `name` holding `model` (a PEFT adapter over `base/` when `adapter`)."""
    config = record.config
    stage = record.entry_point
    task = config.get("task", "e2e")
    origin = hub_origin(config)
    tags = ["todrl", "task-oriented-dialogue", str(config.get("dataset", "dialogue"))]
    if stage == "todrl.rl":
        tags.append("reinforcement-learning")
    if adapter:
        tags.append(str(config.get("adapter", {}).get("type", "peft")))
    metadata: dict[str, Any] = {"library_name": "peft" if adapter else "transformers", "language": ["en"], "tags": tags}
    if origin:
        metadata["base_model"] = origin
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    params = sum(p.numel() for p in model.parameters())
    kind = "a PEFT adapter over the model in `base/`" if adapter else "a plain transformers model"
    made = (f"`python -m {stage} --config config.yaml`, with the config below as config.yaml" if stage
            else "todrl (the config below; no entry point takes all its keys)")
    lines = [
        "---", yaml.safe_dump(metadata, sort_keys=False).rstrip(), "---", "", f"# {name}", "",
        f"A task-oriented dialogue policy trained with todrl: from the dialogue context it writes {_TASK_OUTPUTS[task]}. "
        f"{type(model.get_base_model() if adapter else model).__name__}, {params:,} parameters; {kind}.",
        "", "## Use", "", *_usage(name, seq2seq, adapter, task),
        "", "## How it was made", "",
        f"- Training: {made}; this is its checkpoint `{record.checkpoint.name}/`.",
        f"- Started from: `{config.get('model', 'unknown')}`" + (f" (Hub model `{origin}`)." if origin else "."),
        f"- Exported with: `{command}`",
        "", "## Data", "", *(_scalars({f.name: config.get(f.name) for f in dataclasses.fields(DataConfig)}) or ["Not recorded."]),
        "", "## Test scores", "", *(_scores(record.test_scores, record.checkpoint) if record.test_scores else ["Not recorded."]),
        "", "## Training summary", "", *(_tables(record.summary) if record.summary else ["Not recorded."]),
        "", "## Config", "", "```yaml", yaml.safe_dump(config, sort_keys=False).rstrip() if config else "# not recorded", "```",
    ]
    return "\n".join(lines) + "\n"
