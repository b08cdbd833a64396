"""A trained policy as a dialogue partner: the previous system turn and a user's words in, the next system turn out.

Shared by the HTTP server (`todrl.serve`) and the rating app (`todrl.demo`).
The source of a turn is built by `todrl.format.turn_source`, the function that
built the training sources, from the normalized user words and the previous
turn's generated state, act and delexicalized reply; the reply is read back
with the span grammar and lexicalized. Decoding is greedy, as in evaluation.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rewards.spans import parse_target

from todrl.data import default_data_dir, span_vocabulary
from todrl.data.multiwoz import SAMPLE_PATH
from todrl.data.normalize import normalize_text
from todrl.data.records import BeliefState, DialogueAct, Turn
from todrl.format import turn_source
from todrl.generation import generate_texts
from todrl.lexicalize import InCarLexicalizer, Lexicalized, MultiWozLexicalizer, fill
from todrl.instruct import checkpoint_config, checkpoint_format
from todrl.models import load_merged
from todrl.rl.build import sft_checkpoint

KB = Sequence[Mapping[str, str]]
"""In-Car knowledge-base rows of one dialogue (`todrl.data.incar.load_incar_kbs`)."""


@dataclass
class SystemTurn:
    """One generated system turn: what the next turn's source needs, and what a person reads."""

    belief_state: BeliefState
    dialogue_act: DialogueAct
    response_delex: str
    response: str = ""
    unfilled: list[str] = field(default_factory=list)
    """Placeholders the database could not fill; they stay visible in `response`."""
    db: dict[str, Any] = field(default_factory=dict)
    """domain -> {"matches", "entity"}: the rows the belief state selects."""
    generation: str = ""
    """The raw generated target."""

    def as_turn(self, user: str) -> Turn:
        return Turn(user=user, system=self.response, system_delex=self.response_delex,
                    belief_state=self.belief_state, dialogue_act=self.dialogue_act)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> SystemTurn:
        """Read a turn a client sent back; ValueError names the field that is wrong."""
        if not isinstance(data, dict):
            raise ValueError(f"expected an object, got {type(data).__name__}")
        state, act, delex = data.get("belief_state"), data.get("dialogue_act"), data.get("response_delex")
        if not _is_nested(state, lambda v: isinstance(v, str)):
            raise ValueError("'belief_state' must map domains to {slot: value} objects of strings")
        if not _is_nested(act, lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v)):
            raise ValueError("'dialogue_act' must map domains to {act: [slot, ...]} objects")
        if not isinstance(delex, str):
            raise ValueError("'response_delex' must be a string")
        return cls(state, act, delex)


def _is_nested(value: Any, leaf_ok) -> bool:
    return isinstance(value, dict) and all(
        isinstance(inner, dict) and all(isinstance(k, str) and leaf_ok(v) for k, v in inner.items())
        for inner in value.values()
    )


def database_dir(data_dir: str | Path | None, trained_on: str | None = None) -> Path:
    """The MultiWOZ database under `data_dir`; without one, the training corpus's if it is on this machine,
    else the default corpus folder's, else the sample's shipped with todrl."""
    if data_dir is not None:
        if not (Path(data_dir) / "db").is_dir():
            raise ValueError(f"{data_dir}: no MultiWOZ database here (expected {Path(data_dir) / 'db'}/*_db.json)")
        return Path(data_dir) / "db"
    candidates = [Path(trained_on)] if trained_on else []
    return next((c / "db" for c in [*candidates, default_data_dir("multiwoz21")] if (c / "db").is_dir()), SAMPLE_PATH / "db")


class DialoguePolicy:
    """``DialoguePolicy(checkpoint)``: any todrl checkpoint (SFT, RL, adapter or merged) or run, ready to talk.

    Settings not given are read from the checkpoint's saved run config, so the
    source is truncated and the reply bounded as in training.
    """

    def __init__(self, checkpoint: str | Path, dataset: str | None = None, data_dir: str | Path | None = None,
                 max_source_length: int | None = None, max_new_tokens: int | None = None, device: str | None = None) -> None:
        self.checkpoint = Path(sft_checkpoint(str(checkpoint)))  # a run directory means its best/, else last/
        if not self.checkpoint.is_dir():
            raise ValueError(f"{self.checkpoint}: no such checkpoint directory")
        config = checkpoint_config(self.checkpoint)
        if config.get("task", "e2e") != "e2e":
            raise ValueError(f"{self.checkpoint}: trained for task {config['task']!r}; only end-to-end (e2e) policies talk")
        if checkpoint_format(self.checkpoint) != "e2e":
            raise ValueError(f"{self.checkpoint}: trained in the {checkpoint_format(self.checkpoint)} format; the chat "
                             "server speaks the end-to-end (e2e) format only")
        trained_on = dataset or config.get("dataset") or "multiwoz21"
        self.dataset = "multiwoz21" if trained_on == "synthetic" else trained_on  # todrl.synth writes MultiWOZ's format
        self.with_act = self.dataset != "incar"
        self.vocabulary = span_vocabulary(self.dataset, data_dir or config.get("data_dir"))
        self.max_source_length = max_source_length or config.get("max_source_length") or 256
        self.max_new_tokens = max_new_tokens or config.get("max_new_tokens") or config.get("max_target_length") or 160
        self.lexicalizer = (
            MultiWozLexicalizer(database_dir(data_dir, config.get("data_dir"))) if self.dataset == "multiwoz21" else None
        )
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.tokenizer = load_merged(self.checkpoint)
        self.model.to(self.device).eval()
        self._lock = threading.Lock()

    def source(self, user: str, previous: Turn | None) -> str:
        return turn_source(user, previous, self.with_act)

    def generate(self, sources: Sequence[str]) -> list[str]:
        """Greedy targets for a batch of sources (one batch; callers decide its size)."""
        with self._lock:
            return generate_texts(self.model, self.tokenizer, list(sources), batch_size=max(1, len(sources)),
                                  max_source_length=self.max_source_length, max_new_tokens=self.max_new_tokens)

    def read(self, generation: str, kb: KB | None = None) -> SystemTurn:
        """Parse a generated target and fill its reply (from the dialogue's KB on In-Car)."""
        target = parse_target(generation, self.vocabulary)
        lexicalize = InCarLexicalizer(kb) if kb is not None else self.lexicalizer
        if lexicalize is None:
            filled = Lexicalized(*fill(target.response, lambda slot, k: None))
        else:
            filled = lexicalize(target.response, target.belief_state, target.dialogue_act)
        return SystemTurn(target.belief_state, target.dialogue_act, target.response, filled.text, filled.unfilled,
                          filled.db, generation)

    def respond(self, user: str, previous: Turn | None, kb: KB | None = None) -> SystemTurn:
        """The next system turn after `user` (raw words; normalized here as the corpora were)."""
        return self.read(self.generate([self.source(normalize_text(user), previous)])[0], kb)
