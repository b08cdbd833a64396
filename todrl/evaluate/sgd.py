"""SGD state tracking scored as google-research's ``schema_guided_dst`` does: what SGD papers report.

The rules, from ``evaluate.py`` (``get_metrics``) and ``metrics.py``
(``compare_slot_values``, ``get_average_and_joint_goal_accuracy``):

- The unit is a reference *frame*: a USER turn has one per service it touches.
  A predicted frame must exist for each (the official code stops with an error
  otherwise); predicted services the turn has no frame for are not scored.
- Only the service's schema slots count.  A slot neither side holds scores 1,
  one side only 0; categorical: the first reference value equals the predicted
  one, exactly and case-sensitively; non-categorical: the best
  ``token_sort_ratio / 100`` over the reference values, a fraction, not a pass.
- Frame JGA is the *product* of its slot scores (a near miss costs a fraction);
  frame average goal accuracy (AGA) the mean over the slots the reference holds,
  frames without any being left out.
- Every figure is a plain mean over frames: all, seen (the service is in the
  train schema), unseen, per service.  Dialogues the predictions leave out are
  not scored; a shorter predicted dialogue is scored up to its end.

Acc(VAS), seed 000's volatility between services, is the population standard
deviation of the official per-service JGA (todrl's reading, see ``dst.py``).
"""

from __future__ import annotations

import difflib
import math
import re
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from rapidfuzz.distance import Indel

from todrl.data.errors import DataError
from todrl.data.sgd import SgdService
from todrl.evaluate.predictions import Coverage, PredictionError, Predictions
from todrl.evaluate.sgd_format import OfficialDialogues, SgdReferences, official_dialogues

FUZZY_MATCHERS = ("difflib", "levenshtein")
"""fuzzywuzzy's two ways of comparing the sorted tokens: as the official requirements.txt installs it
(stdlib difflib), or with python-Levenshtein (the Indel similarity, which rapidfuzz computes)."""

ErrorAt = Callable[[str], PredictionError]
"""Builds the error for one turn of one dialogue from its message."""

_LATIN1 = dict.fromkeys(range(128, 256))
_NON_WORD = re.compile(r"\W")


def _sorted_tokens(text: str) -> str:
    """fuzzywuzzy's ``_process_and_sort`` with ``force_ascii``: only code points 128-255 are dropped."""
    return " ".join(sorted(_NON_WORD.sub(" ", text.translate(_LATIN1)).lower().split()))


def token_sort_ratio(reference: str, hypothesis: str, matcher: str = "difflib") -> int:
    """fuzzywuzzy 0.18 ``fuzz.token_sort_ratio``: 0-100, rounded as its ``utils.intr`` rounds.

    Equal token lists score 100 and an empty one 0 (its ``check_for_equivalence``
    and ``check_empty_string``).  difflib's matching blocks can miss the longest
    common subsequence, so it scores some dissimilar pairs lower than the Indel
    similarity ("10th of March" / "11 o'clock in the morning": 16 against 32).
    rapidfuzz's own ``token_sort_ratio`` is not used: it neither rounds
    ("Bird Dog" / "Bird": 66.7, not 67) nor, since 3.0, strips punctuation.
    """
    first, second = _sorted_tokens(reference), _sorted_tokens(hypothesis)
    if first == second:
        return 100
    if not first or not second:
        return 0
    if matcher == "difflib":
        similarity = difflib.SequenceMatcher(None, first, second).ratio()
    else:
        total = len(first) + len(second)
        similarity = (total - Indel.distance(first, second)) / total
    return round(100 * similarity)


def score_frame(
    reference: Mapping[str, list[str]], predicted: Mapping[str, list[str]], service: SgdService, matcher: str
) -> tuple[float, float | None]:
    """(JGA, AGA) of one frame, 0-1; AGA is None when the reference holds no slot of the service."""
    scores, active = [], []
    for name, slot in service.slots.items():
        if name not in reference:
            scores.append(0.0 if name in predicted else 1.0)
            continue
        if name not in predicted:
            score = 0.0
        elif slot.is_categorical:
            score = float(reference[name][0] == predicted[name][0])
        else:
            score = max(token_sort_ratio(value, predicted[name][0], matcher) / 100 for value in reference[name])
        scores.append(score)
        active.append(score)
    return math.prod(scores), (sum(active) / len(active) if active else None)


@dataclass(frozen=True)
class FrameScore:
    service: str
    """As the dataset spells it ("Restaurants_2")."""
    seen: bool
    joint: float
    average: float | None


@dataclass
class GoalAccuracy:
    joint_goal_accuracy: float | None
    """Mean frame JGA, 0-100; None without frames."""
    average_goal_accuracy: float | None
    frames: int

    @classmethod
    def of(cls, frames: Iterable[FrameScore]) -> GoalAccuracy:
        frames = list(frames)
        averages = [f.average for f in frames if f.average is not None]
        return cls(
            joint_goal_accuracy=100 * statistics.fmean(f.joint for f in frames) if frames else None,
            average_goal_accuracy=100 * statistics.fmean(averages) if averages else None,
            frames=len(frames),
        )


@dataclass
class SgdResult:
    all: GoalAccuracy
    seen: GoalAccuracy
    unseen: GoalAccuracy
    per_service: dict[str, float]
    """Official JGA of each service's frames, 0-100."""
    volatility: float | None
    """Acc(VAS): population standard deviation of `per_service` (None with fewer than two services)."""
    matcher: str
    """fuzzywuzzy's backend the non-categorical scores imitate (`FUZZY_MATCHERS`)."""
    coverage: Coverage

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class SgdEvaluator:
    """Scores predicted states against one released SGD split, frame by frame, as the official code does."""

    def __init__(self, references: SgdReferences, matcher: str = "difflib") -> None:
        if matcher not in FUZZY_MATCHERS:
            raise ValueError(f"unknown fuzzy matcher {matcher!r}: expected one of {', '.join(FUZZY_MATCHERS)}")
        self.references = references
        self.gold = references.dialogues()
        self.files = {record["dialogue_id"]: name for name, records in references.files for record in records}
        self.matcher = matcher

    @classmethod
    def from_split(cls, path: str | Path, split: str, matcher: str = "difflib") -> SgdEvaluator:
        return cls(SgdReferences.load(path, split), matcher)

    def official_dialogues(self, predictions: Predictions, source: str | Path = "<predictions>") -> OfficialDialogues:
        """The predictions as SGD dialogue files hold them, values in the dataset's spelling."""
        return official_dialogues(predictions, self.references, source)

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>") -> SgdResult:
        """Score todrl predictions (any spelling): respelled, then scored as a predictions folder would be."""
        return self.evaluate_official(self.official_dialogues(predictions, source), source)

    def evaluate_official(self, predicted: OfficialDialogues, source: str | Path = "<predictions>") -> SgdResult:
        """Score dialogues in SGD's own format (a predictions folder), values taken as written."""
        frames = [score for dialogue_id, dialogue in predicted.items() for score in self._dialogue(dialogue_id, dialogue, source)]
        per_service: dict[str, list[float]] = {}
        for frame in frames:
            per_service.setdefault(frame.service, []).append(frame.joint)
        service_jga = {name: 100 * statistics.fmean(joint) for name, joint in sorted(per_service.items())}
        return SgdResult(
            all=GoalAccuracy.of(frames),
            seen=GoalAccuracy.of(f for f in frames if f.seen),
            unseen=GoalAccuracy.of(f for f in frames if not f.seen),
            per_service=service_jga,
            volatility=statistics.pstdev(service_jga.values()) if len(service_jga) > 1 else None,
            matcher=self.matcher,
            coverage=self._coverage(predicted),
        )

    def _dialogue(self, dialogue_id: str, predicted: Mapping[str, Any], source: str | Path) -> list[FrameScore]:
        """Every reference frame of the USER turns both sides have (``evaluate.py`` zips the turn lists)."""
        gold = self.gold.get(dialogue_id)
        if gold is None:
            raise PredictionError(source, "unknown dialogue id (not in the reference split)", dialogue_id)
        if set(gold["services"]) != set(predicted["services"]):
            message = f"services {predicted['services']} differ from the reference's {gold['services']}"
            raise PredictionError(source, message, dialogue_id)
        scores = []
        for index, (reference, hypothesis) in enumerate(zip(gold["turns"], predicted["turns"])):
            fail = partial(PredictionError, source, dialogue_id=dialogue_id, turn=index)
            frames = _hypothesis_frames(hypothesis, reference, fail)
            for frame in reference["frames"] if reference["speaker"] == "USER" else []:
                name = frame["service"]
                if name not in frames:
                    raise fail(f"no predicted frame for service {name}")
                service = self._service(name, dialogue_id)
                gold_values = self._gold_values(frame, dialogue_id, index)
                joint, average = score_frame(gold_values, _values(frames[name], fail), service, self.matcher)
                scores.append(FrameScore(name, service.name in self.references.seen, joint, average))
        return scores

    def _service(self, name: str, dialogue_id: str) -> SgdService:
        service = self.references.schema.get(name.lower())
        if service is None:
            raise DataError(self.files[dialogue_id], f"service {name} is not in the split's schema.json", dialogue_id)
        return service

    def _gold_values(self, frame: Mapping[str, Any], dialogue_id: str, index: int) -> Mapping[str, list[str]]:
        values = frame.get("state", {}).get("slot_values")
        if not isinstance(values, dict):
            message = f"the {frame['service']} frame has no state.slot_values"
            raise DataError(self.files[dialogue_id], message, dialogue_id, index)
        return values

    def _coverage(self, predicted: OfficialDialogues) -> Coverage:
        def user_turns(dialogue: Mapping[str, Any]) -> int:
            return sum(turn.get("speaker") == "USER" for turn in dialogue["turns"])

        return Coverage(
            dialogues=len(predicted),
            turns=sum(min(user_turns(d), user_turns(self.gold[i])) for i, d in predicted.items()),
            split_dialogues=len(self.gold),
            split_turns=sum(user_turns(d) for d in self.gold.values()),
            missing_dialogues=sorted(set(self.gold) - set(predicted)),
            truncated_dialogues=sorted(i for i, d in predicted.items() if user_turns(d) < user_turns(self.gold[i])),
        )


def _hypothesis_frames(hypothesis: Any, reference: Mapping[str, Any], fail: ErrorAt) -> dict[str, Any]:
    """The predicted turn's frames by service, once it is checked to be the reference's turn."""
    if not isinstance(hypothesis, dict) or hypothesis.get("speaker") != reference["speaker"]:
        found = hypothesis.get("speaker") if isinstance(hypothesis, dict) else type(hypothesis).__name__
        raise fail(f"expected a {reference['speaker']} turn, found {found!r}")
    if reference["speaker"] == "USER" and hypothesis.get("utterance") != reference["utterance"]:
        raise fail("the utterance differs from the reference's")
    frames = hypothesis.get("frames", [])
    if not isinstance(frames, list) or not all(isinstance(frame, dict) for frame in frames):
        raise fail("'frames' should be a list of objects")
    return {frame.get("service"): frame for frame in frames}


def _values(frame: Mapping[str, Any], fail: ErrorAt) -> Mapping[str, list[str]]:
    state = frame.get("state")
    values = state.get("slot_values") if isinstance(state, dict) else None
    if not isinstance(values, dict):
        raise fail(f"the predicted {frame['service']} frame has no state.slot_values")
    for slot, listed in values.items():
        if not (isinstance(listed, list) and listed and all(isinstance(value, str) for value in listed)):
            name = frame["service"]
            raise fail(f"the predicted {name} value of {slot!r} should be a non-empty list of strings, not {listed!r}")
    return values
