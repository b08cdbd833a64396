"""Published standard-evaluator scores of 16 systems (Nekvinda & Dušek 2021) and their prediction files.

The scores are the evaluator authors' table (BLEU against MultiWOZ 2.2
references, Inform/Success with MultiWOZ 2.2 gold states for systems that
predict none); the files are the systems' MultiWOZ 2.1 test outputs.  They
are the check that `StandardEvaluator` reproduces the standard.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path

from todrl.evaluate.predictions import Predictions, PredictionError, parse_predictions


@dataclass(frozen=True)
class PublishedScore:
    bleu: float
    inform: float
    success: float
    own_states: bool
    """Whether the system's file carries its own belief states."""


PUBLISHED: dict[str, PublishedScore] = {
    "augpt": PublishedScore(16.8, 76.6, 60.5, True),
    "damd": PublishedScore(16.4, 57.9, 47.6, True),
    "dots": PublishedScore(16.8, 80.4, 68.7, True),
    "galaxy-e2e": PublishedScore(19.64, 85.4, 75.7, True),
    "galaxy-policy": PublishedScore(19.92, 92.8, 83.5, False),
    "hdno": PublishedScore(17.8, 93.3, 83.4, False),
    "hdsa": PublishedScore(20.7, 87.9, 79.4, False),
    "labes": PublishedScore(18.9, 68.5, 58.1, True),
    "lava": PublishedScore(10.8, 95.9, 93.5, False),
    "marco": PublishedScore(17.3, 94.5, 87.2, False),
    "mintl": PublishedScore(19.4, 73.7, 65.4, True),
    "pptod": PublishedScore(18.2, 83.1, 72.7, True),
    "sfn": PublishedScore(14.1, 93.4, 82.3, False),
    "soloist": PublishedScore(13.6, 82.3, 72.4, True),
    "ubar": PublishedScore(17.6, 83.4, 70.3, True),
    "uniconv": PublishedScore(18.1, 66.7, 58.7, True),
}

LEGACY_PUBLISHED: dict[tuple[str, str], PublishedScore] = {
    ("pptod", "generated"): PublishedScore(18.62, 89.2, 79.4, True),
    ("galaxy-e2e", "gold"): PublishedScore(20.01, 95.3, 86.2, True),
}
"""Scores published with UBAR's evaluator for two of the files, by (system, DB state): PPTOD-base's README
(its eval.py queries the generated state) and GALAXY's MultiWOZ 2.1 table (gold state)."""

IRREPRODUCIBLE = frozenset({"dots", "soloist"})
"""Systems whose published Inform/Success the reference implementation itself does not reproduce from their files."""


def load_published_predictions(archive: str | Path, system: str) -> Predictions:
    """One system's predictions from the archive of published files (``<system>.json`` inside)."""
    try:
        with zipfile.ZipFile(archive) as opened:
            raw = json.loads(opened.read(f"{system}.json"))
    except KeyError:
        raise PredictionError(archive, f"no {system}.json in the archive") from None
    except (OSError, zipfile.BadZipFile, json.JSONDecodeError) as error:
        raise PredictionError(archive, f"cannot read {system}.json: {error}") from None
    return parse_predictions(raw, f"{archive}:{system}.json")
