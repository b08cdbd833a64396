"""Which evaluators score which corpus: the one place `python -m todrl.evaluate`, RL's dev evaluation and the
learning benchmark ask, so that a new corpus touches its reader and this module only.

Each corpus offers named definitions; a caller names the ones it reports and gets one result dict per name:

    multiwoz21: standard (mwzeval Inform/Success/BLEU), dst (mwzeval JGA, the exact one beside),
                legacy (UBAR/PPTOD's eval.py, DB state as `ScoringOptions.db_state`), legacy_gold_db
    incar:      incar (`ScoringOptions.incar_metric`, LABES's by default), incar_labes, incar_galaxy, incar_todrl, dst
    sgd:        sgd (official schema_guided_dst), sgd_strict (todrl's per-turn JGA)

Evaluators are built on first use and kept, so scoring many prediction sets pays the gold side once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from todrl.data.db import MultiWozDB
from todrl.data.records import Dialogue
from todrl.evaluate.predictions import Coverage, Predictions, check_coverage

DEFINITIONS: dict[str, tuple[str, ...]] = {
    "multiwoz21": ("standard", "dst", "legacy", "legacy_gold_db"),
    "incar": ("incar", "incar_labes", "incar_galaxy", "incar_todrl", "dst"),
    "sgd": ("sgd", "sgd_strict"),
}
REPORTED: dict[str, tuple[str, ...]] = {
    "multiwoz21": ("standard", "dst"),
    "incar": ("incar", "dst"),
    "sgd": ("sgd", "sgd_strict"),
}
"""What a corpus reports by default: its headline definitions (`python -m todrl.evaluate`)."""
NEEDS_STATES = {"dst", "sgd", "sgd_strict"}
"""Definitions that score belief states; they are left out for a predictions file without states (SGD's fail)."""


@dataclass(frozen=True)
class ScoringOptions:
    """The choices within a corpus's definitions (the CLI's flags)."""

    db_state: Literal["gold", "generated"] = "gold"
    """legacy: the belief state of the database queries (UBAR's default gold; PPTOD reports generated)."""
    legacy_variant: Literal["ubar", "mttod"] = "ubar"
    incar_metric: Literal["labes", "galaxy", "todrl"] = "labes"
    """incar: LABES's metric.py, GALAXY's eval.py (fuzzy Match) or todrl's own."""
    sgd_fuzzy: Literal["difflib", "levenshtein"] = "difflib"
    lexical: bool = True
    """standard: also measure lexical richness (what RL's frequent dev evaluations skip)."""


class CorpusScorer:
    """The definitions `names` of one corpus split, applied to any number of prediction sets."""

    def __init__(self, dataset: str, dialogues: Sequence[Dialogue], data_dir: str | Path | None, split: str,
                 names: Sequence[str], options: ScoringOptions = ScoringOptions()) -> None:
        unknown = sorted(set(names) - set(DEFINITIONS.get(dataset, ())))
        if unknown:
            raise ValueError(f"{dataset}: no definition {unknown}; choose from {', '.join(DEFINITIONS.get(dataset, ()))}")
        self.dataset, self.dialogues, self.split, self.names, self.options = dataset, list(dialogues), split, names, options
        self.turn_counts = {dialogue.id: len(dialogue.turns) for dialogue in self.dialogues}
        """System turns per dialogue of the split: what a predictions file is checked against, for every corpus."""
        self.data_dir = Path(data_dir) if data_dir is not None else _default_dir(dataset)
        self._evaluators: dict[str, Any] = {}

    @classmethod
    def cached(cls, dataset: str, data_dir: str | Path | None, split: str, names: Sequence[str],
               options: ScoringOptions = ScoringOptions()) -> CorpusScorer:
        """The scorer of a whole split, from the on-disk cache when the data and code are unchanged (see
        `todrl.evaluate.cache`): scoring a file then parses nothing of the corpus."""
        from todrl.data import load_dialogues
        from todrl.evaluate.cache import cached, entry_key

        data_dir = Path(data_dir) if data_dir is not None else _default_dir(dataset)
        key = entry_key(data_dir, dataset, split, ",".join(names), repr(options))
        return cached(key, lambda: cls(dataset, load_dialogues(dataset, data_dir, split), data_dir, split, names, options))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled prepared: every evaluator built, and the dialogues they were built from left behind."""
        for name in self.names:
            self.evaluator(name)
        return {**self.__dict__, "dialogues": None}

    def coverage(self, predictions: Predictions, source: str | Path = "<predictions>") -> Coverage:
        """How much of the split `predictions` cover; unknown dialogues and extra turns are errors."""
        return check_coverage(predictions, self.turn_counts, source)

    def score(self, predictions: Predictions, source: str | Path = "<predictions>") -> dict[str, Any]:
        """One result per definition, beside a ``coverage`` block saying whether the scores stand for the whole split."""
        coverage = self.coverage(predictions, source)
        has_states = all(t.state is not None for turns in predictions.values() for t in turns)
        if self.dataset == "sgd" and not has_states:
            raise ValueError(f"{source}: SGD is scored on belief states, and some predicted turns have no 'state'")
        return {"coverage": coverage.counts()} | {name: self._evaluate(name, predictions, source).as_dict()
                                                  for name in self.names if has_states or name not in NEEDS_STATES}

    def evaluator(self, name: str) -> Any:
        """The evaluator behind a definition (both legacy definitions share one)."""
        key = "legacy" if name.startswith("legacy") else name
        if key not in self._evaluators:
            self._evaluators[key] = self._build(key)
        return self._evaluators[key]

    def _evaluate(self, name: str, predictions: Predictions, source: str | Path) -> Any:
        if name.startswith("legacy"):
            db_state = self.options.db_state if name == "legacy" else "gold"
            return self.evaluator(name).evaluate(predictions, source, db_state=db_state)
        if name == "standard":
            return self.evaluator(name).evaluate(predictions, source, lexical=self.options.lexical)
        return self.evaluator(name).evaluate(predictions, source)

    def _build(self, name: str) -> Any:
        dialogues, options = self.dialogues, self.options
        if name == "standard":
            from todrl.evaluate.multiwoz import StandardEvaluator

            return StandardEvaluator(dialogues, self._db())
        if name == "legacy":
            from todrl.data.multiwoz import read_records
            from todrl.evaluate.legacy import LegacyEvaluator

            return LegacyEvaluator(dialogues, self._db(), options.legacy_variant, read_records(self.data_dir, self.split))
        if name == "dst" and self.dataset == "multiwoz21":
            from todrl.evaluate.dst import MultiWozDstEvaluator

            return MultiWozDstEvaluator(dialogues)
        if name in ("dst", "sgd_strict"):
            from todrl.evaluate.dst import DstEvaluator, text_spelling

            return DstEvaluator(dialogues, text_spelling)
        if name.startswith("incar"):
            from todrl.evaluate.incar_published import incar_evaluator

            metric = options.incar_metric if name == "incar" else name.removeprefix("incar_")
            return incar_evaluator(metric, dialogues, self.data_dir, self.split)
        if name == "sgd":
            from todrl.evaluate.sgd import SgdEvaluator

            return SgdEvaluator.from_split(self.data_dir, self.split, options.sgd_fuzzy)
        raise AssertionError(name)  # unreachable: names are checked against DEFINITIONS

    def _db(self) -> MultiWozDB:
        return MultiWozDB(self.data_dir / "db")


def _default_dir(dataset: str) -> Path:
    if dataset == "multiwoz21":
        from todrl.data.multiwoz import SAMPLE_PATH

        return Path(SAMPLE_PATH)
    from todrl.data import default_data_dir

    return default_data_dir(dataset)


DEV_SELECTION: dict[str, tuple[tuple[str, ...], ScoringOptions]] = {
    "multiwoz21": (("standard", "dst"), ScoringOptions(lexical=False)),
    "incar": (("incar", "dst"), ScoringOptions()),
    "sgd": (("sgd_strict",), ScoringOptions()),
}
"""What RL's periodic dev evaluation scores and selects best/ on: Combined under the published definition where the
corpus has one (the standard MultiWOZ evaluator, LABES's In-Car metric), else the strict SGD figures."""


def figures(scores: dict[str, Any]) -> dict[str, float | None]:
    """The headline numbers of a `CorpusScorer.score` result, one flat name each.

    The default definition of a figure is unprefixed (`combined`, `match`, `jga`); the others carry their
    definition's name (`legacy_combined`, `galaxy_match`, `todrl_match`, `jga_exact`, `strict_jga`).
    """
    out: dict[str, float | None] = {}
    if "standard" in scores:
        standard = scores["standard"]
        out |= {"inform": standard["inform"].get("total"), "success": standard["success"].get("total"),
                "bleu": standard["bleu"], "combined": standard["combined"]}
    for name in ("legacy", "legacy_gold_db"):
        if name in scores:
            out |= {f"{name}_{key}": scores[name][key] for key in ("inform", "success", "bleu", "combined")}
    for name, result in scores.items():
        if name.startswith("incar"):
            prefix = "" if name == "incar" else name.removeprefix("incar_") + "_"
            out |= {f"{prefix}{key}": result[key] for key in ("match", "success_f1", "bleu", "combined")}
    if "dst" in scores:
        dst = scores["dst"]
        out |= {"jga": dst["jga"], "jga_exact": dst["jga_exact"]} if "jga_exact" in dst else {
            "jga": dst["joint_goal_accuracy"]}
    if "sgd" in scores:
        sgd = scores["sgd"]
        out |= {"jga": sgd["all"]["joint_goal_accuracy"], "aga": sgd["all"]["average_goal_accuracy"],
                "jga_seen": sgd["seen"]["joint_goal_accuracy"], "jga_unseen": sgd["unseen"]["joint_goal_accuracy"],
                "vas": sgd["volatility"]}
    if "sgd_strict" in scores:
        strict = scores["sgd_strict"]
        out |= {"strict_jga": strict["joint_goal_accuracy"], "strict_slot_accuracy": strict["slot_accuracy"],
                "strict_vas": strict["volatility"]}
    return out
