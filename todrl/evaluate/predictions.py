"""Prediction files in the standard MultiWOZ evaluator's format: reading, checking, writing.

``{"sng0073": [{"response": "...", "state": {...}, "active_domains": [...]}, ...], ...}``:
one list per dialogue, one object per system turn.  ``state`` and
``active_domains`` are optional, so any published system's outputs can be
scored.  Every problem is reported with the file, the dialogue and the turn,
because a prediction file is usually written by someone else's code.
"""

from __future__ import annotations

import json
import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError
from todrl.data.records import BeliefState

Predictions = dict[str, list["PredictedTurn"]]
"""Dialogue id (lower-case, "sng0073") -> its system turns in order."""

MAX_RESPONSE_CHARS = 10_000
"""Most characters read per response, state value or name; a longer one is an error. No gold reply of MultiWOZ
or In-Car reaches 750, and scoring pays about 5 us and 150 bytes per character (BLEU's n-gram counts): one
50M-character reply took 176 s and 7.6 GB."""


class PredictionError(DataError):
    """A prediction file is malformed or does not fit the reference dialogues."""


@dataclass
class PredictedTurn:
    response: str
    """Delexicalized response, with ``[slot]`` placeholders in any common naming."""
    state: BeliefState | None = None
    """Predicted belief state; None means "score with the gold state"."""
    active_domains: list[str] | None = None
    """Domains the response is about; None means "estimate them from state changes"."""


@dataclass
class Coverage:
    """How much of the reference split a prediction file covers (published files skip a few dialogues)."""

    dialogues: int
    turns: int
    split_dialogues: int
    split_turns: int
    """What the reference split holds, for "10 of 1000"."""
    missing_dialogues: list[str] = field(default_factory=list)
    truncated_dialogues: list[str] = field(default_factory=list)
    """Dialogues with fewer predicted turns than reference turns; their prefix is scored."""

    @property
    def complete(self) -> bool:
        return not self.missing_dialogues and not self.truncated_dialogues

    def counts(self) -> dict[str, int | bool]:
        """The numbers alone (no ids), as a result's top-level ``coverage`` block reports them."""
        return {"complete": self.complete, "dialogues": self.dialogues, "split_dialogues": self.split_dialogues,
                "turns": self.turns, "split_turns": self.split_turns, "missing_dialogues": len(self.missing_dialogues),
                "truncated_dialogues": len(self.truncated_dialogues)}


def load_predictions(path: str | Path) -> Predictions:
    """Read and type-check a prediction file (structure only; `check_coverage` matches it to the references)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PredictionError(path, "file not found") from None
    except IsADirectoryError:
        raise PredictionError(path, "is a directory, not a predictions file") from None
    except OSError as error:
        raise PredictionError(path, f"cannot be read: {error.strerror or error}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PredictionError(path, f"not valid JSON: {error}") from None
    except RecursionError:
        raise PredictionError(path, "not valid predictions: JSON nested too deeply to read") from None
    predictions = parse_predictions(raw, path)
    if not any(predictions.values()):
        raise PredictionError(path, "no predicted turns: there is nothing to score")
    return predictions


def parse_predictions(raw: Any, source: str | Path = "<predictions>") -> Predictions:
    """Type-check predictions already decoded from JSON; dialogue ids are lower-cased, ".json" dropped."""
    if not isinstance(raw, Mapping):
        raise PredictionError(source, f"expected an object of dialogue id -> turns, found {type(raw).__name__}")
    predictions: Predictions = {}
    for raw_id, turns in raw.items():
        dialogue_id = _bounded(str(raw_id), "a dialogue id", partial(PredictionError, source)).lower()
        dialogue_id = dialogue_id.removesuffix(".json")
        if not isinstance(turns, Sequence) or isinstance(turns, (str, bytes)):
            raise PredictionError(source, f"expected a list of turns, found {type(turns).__name__}", dialogue_id)
        predictions[dialogue_id] = [_parse_turn(turn, source, dialogue_id, index) for index, turn in enumerate(turns)]
    return predictions


def _parse_turn(raw: Any, source: str | Path, dialogue_id: str, index: int) -> PredictedTurn:
    def fail(message: str) -> PredictionError:
        return PredictionError(source, message, dialogue_id, index)

    if not isinstance(raw, Mapping):
        raise fail(f"expected an object with a 'response', found {type(raw).__name__}")
    if "response" not in raw:
        raise fail("missing 'response'")
    if not isinstance(raw["response"], str):
        raise fail(f"'response' must be a string, found {type(raw['response']).__name__}")
    state = raw.get("state")
    if state is not None:
        if not isinstance(state, Mapping):
            raise fail(f"'state' must be an object of domain -> slot -> value, found {type(state).__name__}")
        state = {_bounded(str(domain), "a state domain", fail): _parse_slots(slots, fail, domain)
                 for domain, slots in state.items()}
    domains = raw.get("active_domains")
    if domains is not None:
        if not isinstance(domains, Sequence) or isinstance(domains, str) or not all(isinstance(d, str) for d in domains):
            raise fail(f"'active_domains' must be a list of domain names, found {reprlib.repr(domains)}")
        domains = [_bounded(d, "an active domain", fail).lower() for d in domains]
    return PredictedTurn(response=_bounded(raw["response"], "'response'", fail), state=state, active_domains=domains)


def _parse_slots(slots: Any, fail: Any, domain: str) -> dict[str, str]:
    if not isinstance(slots, Mapping):
        raise fail(f"state[{reprlib.repr(domain)}] must be an object of slot -> value, found {type(slots).__name__}")
    parsed = {}
    for slot, value in slots.items():
        where = f"state[{reprlib.repr(domain)}][{reprlib.repr(slot)}]"
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise fail(f"{where} must be a string, found {reprlib.repr(value)}")
        parsed[_bounded(str(slot), "a slot name", fail)] = _bounded(str(value), where, fail)
    return parsed


def _bounded(text: str, what: str, fail: Any) -> str:
    """`text` if within `MAX_RESPONSE_CHARS`: longer, it is no reply but would cost minutes to score."""
    if len(text) > MAX_RESPONSE_CHARS:
        raise fail(f"{what} has {len(text):,} characters, where at most {MAX_RESPONSE_CHARS:,} are read "
                   "(MAX_RESPONSE_CHARS)")
    return text


def check_coverage(predictions: Predictions, reference_turns: Mapping[str, int], source: str | Path) -> Coverage:
    """Match predictions to the reference dialogues: unknown ids and extra turns are errors.

    Missing dialogues and missing final turns are tolerated and reported, because
    several published prediction files have them and were scored that way.
    """
    for dialogue_id, turns in predictions.items():
        expected = reference_turns.get(dialogue_id)
        if expected is None:
            raise PredictionError(source, "unknown dialogue id (not in the reference split)", dialogue_id)
        if len(turns) > expected:
            raise PredictionError(
                source, f"{len(turns)} turns predicted but the dialogue has {expected} system turns", dialogue_id, expected
            )
    return Coverage(
        dialogues=len(predictions),
        turns=sum(len(turns) for turns in predictions.values()),
        split_dialogues=len(reference_turns),
        split_turns=sum(reference_turns.values()),
        missing_dialogues=sorted(set(reference_turns) - set(predictions)),
        truncated_dialogues=sorted(d for d, turns in predictions.items() if len(turns) < reference_turns[d]),
    )


def dump_predictions(predictions: Predictions, path: str | Path) -> None:
    """Write predictions in the standard format (optional fields left out when None)."""
    payload = {
        dialogue_id: [
            {"response": t.response}
            | ({"state": t.state} if t.state is not None else {})
            | ({"active_domains": t.active_domains} if t.active_domains is not None else {})
            for t in turns
        ]
        for dialogue_id, turns in predictions.items()
    }
    Path(path).write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
