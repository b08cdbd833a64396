"""State tracking: joint goal accuracy, slot scores, and for SGD per-service accuracy and its volatility.

MultiWOZ is scored by default as the standard evaluator's ``dst`` does it
(mwzeval ``metrics.py``, ``get_dst``), because that is the definition other
tools apply to the same prediction files: gold "dontcare" slots are dropped
(a predicted one is a false positive), both states get the standard slot-name
and value normalization, and a value is right when its fuzzy partial ratio
to the gold one exceeds 95 ("the cambridge belfry" for "cambridge belfry").
JGA needs the same slots, all right; slot precision, recall and F1 are
micro-averaged over (domain, slot) pairs.  The gold states are MultiWOZ
2.1's (mwzeval downloads 2.2's, which are not to be had offline), and 2.2's
booking-slot names ("bookday") count as 2.1's ("day"), so files written
for either release score alike.

The exact definition (``jga_exact``, TRADE-style) is the share of turns
whose whole predicted state equals the gold one, "dontcare" included, after
todrl's own spelling normalization.  Slot accuracy counts, per turn, the
slots of the dialogue's domains (or services) that are right, wrong or
missing, TRADE's way, but over the dialogue's own domains rather than every
slot of the corpus (SGD has hundreds, which would make any tracker look near
perfect).  SGD lists several spellings of a value; any of them counts as right.

Acc(VAS) follows seed 000's description ("accuracy volatility between
services; smaller is more stable"): the population standard deviation of the
per-service JGA, in the same 0-100 units.  The paper gives no formula and its
table is not consistent with "smaller is better", so this is our reading.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from todrl.data.normalize import normalize_text, normalize_value, state_slot_name
from todrl.data.records import BeliefState, Dialogue
from todrl.evaluate.fuzzy import partial_ratio
from todrl.evaluate.multiwoz import standard_gold_state
from todrl.evaluate.normalization import normalize_state
from todrl.evaluate.predictions import Coverage, PredictionError, Predictions, check_coverage

AcceptedValues = dict[str, dict[str, list[str]]]
"""domain -> slot -> every spelling counted as right."""


@dataclass
class DstResult:
    joint_goal_accuracy: float
    slot_accuracy: float
    turns: int
    coverage: Coverage
    per_service: dict[str, float] = field(default_factory=dict)
    """JGA restricted to each service, over the turns whose gold or predicted state mentions it."""
    volatility: float | None = None
    """Acc(VAS): standard deviation of `per_service` (None with fewer than two services)."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ValueNormalizer = Callable[[str, str], "tuple[str, str | None]"]
"""(slot, value) as predicted -> (slot, value) as the gold states spell them; None drops the slot."""


def multiwoz_spelling(slot: str, value: str) -> tuple[str, str | None]:
    """MultiWOZ slot names and values as the reader writes gold states ("leaveAt" -> "leave", "5pm" -> "17:00")."""
    name = state_slot_name(slot)
    return name, normalize_value(name, value)


def text_spelling(slot: str, value: str) -> tuple[str, str | None]:
    """SGD / In-Car: values tokenized and lower-cased like the gold ones."""
    return slot, normalize_text(value) or None


def _clean(state: BeliefState | None, spelling: ValueNormalizer) -> BeliefState:
    cleaned: BeliefState = {}
    for domain, slots in (state or {}).items():
        pairs = [spelling(slot, value) for slot, value in slots.items()]
        kept = {slot: value for slot, value in pairs if value is not None}
        if kept:
            cleaned[domain.lower()] = kept
    return cleaned


def _accepted(turn: Any) -> AcceptedValues:
    gold_values = getattr(turn, "gold_values", None)
    if gold_values:
        return gold_values
    return {d: {s: [v] for s, v in slots.items()} for d, slots in turn.belief_state.items()}


def slot_inventory(dialogues: Sequence[Dialogue]) -> dict[str, set[str]]:
    """Every slot each domain (service) has in the gold states of these dialogues."""
    inventory: dict[str, set[str]] = defaultdict(set)
    for dialogue in dialogues:
        for turn in dialogue.turns:
            for domain, slots in turn.belief_state.items():
                inventory[domain].update(slots)
    return dict(inventory)


def _domain_correct(predicted: Mapping[str, str], accepted: Mapping[str, list[str]]) -> bool:
    return predicted.keys() == accepted.keys() and all(predicted[s] in accepted[s] for s in accepted)


def _wrong_slots(predicted: BeliefState, accepted: AcceptedValues) -> int:
    wrong = 0
    for domain in predicted.keys() | accepted.keys():
        guess, gold = predicted.get(domain, {}), accepted.get(domain, {})
        wrong += sum(1 for s in gold if guess.get(s) not in gold[s])
        wrong += sum(1 for s in guess if s not in gold)
    return wrong


class DstEvaluator:
    """Scores the ``state`` of each predicted turn against the gold belief states."""

    def __init__(self, dialogues: Sequence[Dialogue], spelling: ValueNormalizer = text_spelling) -> None:
        self.dialogues = {dialogue.id: dialogue for dialogue in dialogues}
        self.inventory = slot_inventory(dialogues)
        self.spelling = spelling

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>") -> DstResult:
        coverage = check_coverage(predictions, {d: len(x.turns) for d, x in self.dialogues.items()}, source)
        joint = slot_score = turns = 0.0
        service_hits: dict[str, list[bool]] = defaultdict(list)
        for dialogue_id, predicted_turns in predictions.items():
            dialogue = self.dialogues[dialogue_id]
            domains = set(dialogue.services) | {d for t in dialogue.turns for d in t.belief_state}
            slot_count = sum(len(self.inventory.get(d, ())) for d in domains) or 1
            for index, predicted_turn in enumerate(predicted_turns):
                if predicted_turn.state is None:
                    raise PredictionError(source, "no 'state' to score", dialogue_id, index)
                predicted = _clean(predicted_turn.state, self.spelling)
                accepted = _accepted(dialogue.turns[index])
                turns += 1
                joint += all(_domain_correct(predicted.get(d, {}), accepted.get(d, {})) for d in predicted.keys() | accepted.keys())
                slot_score += max(0.0, 1 - _wrong_slots(predicted, accepted) / slot_count)
                for domain in predicted.keys() | accepted.keys():
                    service_hits[domain].append(_domain_correct(predicted.get(domain, {}), accepted.get(domain, {})))
        per_service = {d: 100 * sum(hits) / len(hits) for d, hits in sorted(service_hits.items())}
        return DstResult(
            joint_goal_accuracy=100 * joint / max(turns, 1),
            slot_accuracy=100 * slot_score / max(turns, 1),
            turns=int(turns),
            coverage=coverage,
            per_service=per_service,
            volatility=statistics.pstdev(per_service.values()) if len(per_service) > 1 else None,
        )


FUZZY_THRESHOLD = 95
"""mwzeval ``get_dst(fuzzy_ratio=95)``: a value is right when its partial ratio to the gold one is above this."""


def standard_turn(predicted: BeliefState, gold: BeliefState) -> tuple[bool, int, int, int]:
    """(joint match, true positives, false positives, false negatives) of two normalized states, mwzeval's way.

    A predicted slot is a true positive when the gold state has it and the values match, else a false
    positive; every gold slot left unmatched is a false negative.
    """
    hyp = {(domain, slot): value for domain, slots in predicted.items() for slot, value in slots.items()}
    ref = {(domain, slot): value for domain, slots in gold.items() for slot, value in slots.items()}
    hits = sum(1 for key, value in hyp.items() if key in ref and partial_ratio(value, ref[key]) > FUZZY_THRESHOLD)
    return hyp.keys() == ref.keys() and hits == len(ref), hits, len(hyp) - hits, len(ref) - hits


@dataclass
class MultiWozDstResult:
    jga: float
    """Standard definition (mwzeval): fuzzy values, gold "dontcare" dropped."""
    slot_precision: float
    slot_recall: float
    slot_f1: float
    jga_exact: float
    """TRADE-style: exact values after todrl's normalization, "dontcare" kept."""
    slot_accuracy_exact: float
    turns: int
    coverage: Coverage

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MultiWozDstEvaluator:
    """MultiWOZ state tracking under both definitions, against the gold MultiWOZ 2.1 states."""

    def __init__(self, dialogues: Sequence[Dialogue]) -> None:
        self.gold = {d.id: [standard_gold_state(t.belief_state) for t in d.turns] for d in dialogues}
        self.exact = DstEvaluator(dialogues, multiwoz_spelling)

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>") -> MultiWozDstResult:
        exact = self.exact.evaluate(predictions, source)  # also rejects unknown dialogues and turns without a state
        joint = tp = fp = fn = 0
        for dialogue_id, predicted_turns in predictions.items():
            for predicted_turn, gold in zip(predicted_turns, self.gold[dialogue_id]):
                match, hits, extra, missed = standard_turn(normalize_state(predicted_turn.state or {}), gold)
                joint, tp, fp, fn = joint + match, tp + hits, fp + extra, fn + missed
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        return MultiWozDstResult(
            jga=100 * joint / max(exact.turns, 1),
            slot_precision=100 * precision,
            slot_recall=100 * recall,
            slot_f1=100 * 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            jga_exact=exact.joint_goal_accuracy,
            slot_accuracy_exact=exact.slot_accuracy,
            turns=exact.turns,
            coverage=exact.coverage,
        )
