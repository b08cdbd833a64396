"""In-Car Match, SuccF1 and BLEU as the published code computes them, on todrl's predictions.

``labes`` is LABES's ``metric.py`` ``KvretEvaluator`` (LABES's In-Car table);
``galaxy`` is GALAXY's ``galaxy/utils/eval.py`` ``KvretEvaluator`` (GALAXY's
and SPACE-3's tables).  Both score against LABES's preprocessing of the test
set (`incar_labes`):

- Match, per dialogue: the gold constraint of the last turn whose gold reply
  holds a placeholder, against the predicted one of the last turn whose
  predicted reply does (else the final turn); dialogues whose gold constraint
  is empty are left out.  Filler words are deleted from every value
  (``_JUNK``, as substrings: "next week" -> "") and values that are not listed
  entities dropped; then ``labes`` compares the slot -> value maps exactly,
  ``galaxy`` the sets of values with a fuzzy match (`_values_match`).
- SuccF1: micro F1 over dialogues between the placeholder types of the gold
  replies and of the predicted ones, after `clean` re-delexicalizes every
  listed entity in both ("monday" -> ``[value_date]``, counted as "date";
  ``[value_weather_attribute]`` counts as "weather").
- BLEU: corpus BLEU of the cleaned replies, each wrapped in ``<go_r> ...
  <eos_r>`` (``galaxy``: ``<sos_r>``).
- ``labes`` scores only the dialogues LABES's batching keeps: it groups
  dialogues by number of turns and drops a group of at most 32 (half its batch
  of 64), which leaves 267 of the 304 test dialogues.  LABES's model reads and
  writes through its 1,100-word vocabulary (``<unk>`` elsewhere), GALAXY's
  through BERT's tokenizer (`bert_text`).

A prediction is put in the reference's form as LABES's preprocessing would
have written the model's reply: todrl's clock times back to 12-hour, then
`LabesKvret.delexicalize` (which leaves todrl's placeholders alone) and the
same constraint cleaning as the gold states.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import takewhile
from pathlib import Path
from typing import Literal

from todrl.data import dev_split_name
from todrl.data.records import Dialogue
from todrl.evaluate.bleu import legacy_bleu
from todrl.evaluate.incar import InCarEvaluator, InCarResult
from todrl.evaluate.incar_labes import INFORMABLE, SLOTS, LabesDialogue, LabesKvret, LabesTurn, load_labes_kvret
from todrl.evaluate.incar_text import bert_text, clean_replace, join_meridiem, twelve_hour
from todrl.evaluate.predictions import PredictedTurn, Predictions, check_coverage

Definition = Literal["labes", "galaxy"]
DEFINITIONS: tuple[Definition, ...] = ("labes", "galaxy")

_JUNK = ("good", "great", "quickest", "shortest", "route", "week", "fastest", "nearest", "next", "closest", "way",
         "mile", "activity", "restaurant", "appointment")  # fmt: skip
"""Deleted from constraint values before Match, in this order (``_normalize_constraint``)."""
_MINOR = ("temperature", "week", "est ", "quick", "reminder", "near")
"""GALAXY's ``useless_constraint``: a value holding one of these may go unmatched."""
_BATCH = 64
"""LABES's KVRET batch size: turn-count groups of at most half of it are never evaluated."""
_SLOT_NAMES = frozenset(slot for slots in INFORMABLE.values() for slot in slots)
_TINY = 1e-8
"""The smoothing both evaluators add to every denominator."""


@dataclass(frozen=True)
class _Reply:
    """A reply and its turn's constraint as an evaluator reads them."""

    text: str
    """As the model writes it (Match looks for a placeholder here)."""
    cleaned: str
    """After `PublishedInCarEvaluator.clean` (SuccF1 and BLEU)."""
    constraint: dict[str, str]


class PublishedInCarEvaluator:
    def __init__(self, corpus: LabesKvret, split: str = "test", definition: Definition = "labes") -> None:
        if definition not in DEFINITIONS:
            raise ValueError(f"unknown In-Car definition {definition!r}: expected one of {DEFINITIONS}")
        split = dev_split_name(split)
        if split not in corpus.splits:
            raise ValueError(f"unknown In-Car split {split!r}: expected one of {tuple(corpus.splits)}")
        self.corpus, self.definition = corpus, definition
        self.dialogues = corpus.splits[split]
        scored = set(self.dialogues) if definition == "galaxy" else _batched(self.dialogues)
        self.references = {
            dialogue_id: [self._read(turn.response, turn.constraint) for turn in dialogue.turns]
            for dialogue_id, dialogue in self.dialogues.items() if dialogue_id in scored
        }  # fmt: skip
        """The gold replies of the dialogues the definition scores."""

    @classmethod
    def from_data_dir(
        cls, data_dir: str | Path, split: str = "test", definition: Definition = "labes"
    ) -> PublishedInCarEvaluator:
        """From the official release (a folder or the zip); LABES's preprocessing runs once per release and process."""
        return cls(load_labes_kvret(Path(data_dir).resolve()), split, definition)

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>") -> InCarResult:
        coverage = check_coverage(predictions, {d: x.todrl_turns for d, x in self.dialogues.items()}, source)
        has_states = all(t.state is not None for turns in predictions.values() for t in turns)
        dialogues = []
        for dialogue_id, predicted in predictions.items():
            turns = zip(self.dialogues[dialogue_id].turns, self.references.get(dialogue_id, ()))
            domain = self.dialogues[dialogue_id].domain
            rows = [(self._predicted(turn, predicted[turn.position], domain), gold) for turn, gold in turns
                    if turn.position < len(predicted)]  # fmt: skip
            if rows:
                dialogues.append(rows)
        match, counted = self._match(dialogues) if has_states else (None, None)
        return InCarResult(
            match=match,
            success_f1=100 * _request_f1(dialogues),
            bleu=legacy_bleu((predicted.cleaned, gold.cleaned) for rows in dialogues for predicted, gold in rows),
            coverage=coverage,
            definition=self.definition,
            dialogues=len(dialogues),
            match_dialogues=counted,
        )

    def _predicted(self, turn: LabesTurn, predicted: PredictedTurn, domain: str) -> _Reply:
        """A todrl prediction as LABES's preprocessing would have written it."""
        text = self.corpus.delexicalize(join_meridiem(twelve_hour(predicted.response.lower())), turn.heard, domain)
        state = {f"{service.lower()}-{slot}": twelve_hour(value.lower())
                 for service, slots in (predicted.state or {}).items() for slot, value in slots.items()}  # fmt: skip
        return self._read(text, self.corpus.clean_constraint(state))

    def _read(self, text: str, constraint: Mapping[str, str]) -> _Reply:
        """Through the definition's model vocabulary: LABES's 1,100 words, or GALAXY's BERT tokenizer."""
        if self.definition == "galaxy":
            text = bert_text(text)
            return _Reply(text, self.clean(text), _galaxy_read(constraint))
        text = self.corpus.in_vocabulary(text)
        read = {slot: self.corpus.in_vocabulary(value) for slot, value in constraint.items()}
        return _Reply(text, self.clean(text), read)

    def clean(self, response: str) -> str:
        """``KvretEvaluator.clean``: wrap the reply, then re-delexicalize every listed entity."""
        if self.definition == "labes":
            response = "<go_r> " + response.replace("<go_r> ", "") + " <eos_r>"
        else:
            response = "<sos_r> " + response.replace("<sos_r> ", "").replace(" <eos_r>", "") + " <eos_r>"
        for value, slot in self.corpus.entities.items():
            response = clean_replace(response, value, f"[value_{slot}]")
        return response

    def _match(self, dialogues: Iterable[Sequence[tuple[_Reply, _Reply]]]) -> tuple[float, int]:
        """``match_metric``: (Match in %, number of dialogues it counts)."""
        matched = counted = 0
        for rows in dialogues:
            predicted = next((p.constraint for p, _ in reversed(rows) if "[value" in p.text), rows[-1][0].constraint)
            gold = next((g.constraint for _, g in reversed(rows) if "[value" in g.text), {})
            gold_values = self._constraint(gold)
            if not any(gold_values.values()):
                continue
            counted += 1
            predicted_values = self._constraint(predicted)
            if self.definition == "labes":
                matched += predicted_values == gold_values
            else:
                matched += _values_match({v for v in predicted_values.values() if v}, {v for v in gold_values.values() if v})
        return 100 * matched / (counted + _TINY), counted

    def _constraint(self, constraint: Mapping[str, str]) -> dict[str, str]:
        """``_normalize_constraint``: every informable slot, filler words deleted, unlisted values left empty."""
        normalized = dict.fromkeys(SLOTS, "")
        for slot, value in constraint.items():
            for junk in _JUNK:
                value = " ".join(value.replace(junk, "").split())
            if value in self.corpus.entities and slot in SLOTS:
                normalized[slot] = value
        return normalized


def _request_f1(dialogues: Iterable[Sequence[tuple[_Reply, _Reply]]]) -> float:
    """``request_metric``: micro F1 between the placeholder types of each dialogue's predicted and gold replies."""
    counts: Counter[str] = Counter()
    for rows in dialogues:
        predicted = {kind for reply, _ in rows for kind in _placeholder_types(reply.cleaned)}
        gold = {kind for _, reply in rows for kind in _placeholder_types(reply.cleaned)}
        counts.update(tp=len(predicted & gold), fp=len(predicted - gold), fn=len(gold - predicted))
    precision = counts["tp"] / (counts["tp"] + counts["fp"] + _TINY)
    recall = counts["tp"] / (counts["tp"] + counts["fn"] + _TINY)
    return 2 * precision * recall / (precision + recall + _TINY)


def _placeholder_types(text: str) -> set[str]:
    """"[value_weather_attribute]" counts as "weather": the word after the first underscore."""
    placeholders = (word for word in text.split() if "[value_" in word and word.endswith("]") and word != "[value_name]")
    return {word[1:-1].split("_")[1] for word in placeholders}


def _batched(dialogues: Mapping[str, LabesDialogue]) -> set[str]:
    """Dialogues in LABES's test batches: a group of dialogues with as many turns, when larger than half a batch."""
    sizes = Counter(len(dialogue.turns) for dialogue in dialogues.values())
    return {dialogue_id for dialogue_id, dialogue in dialogues.items() if sizes[len(dialogue.turns)] > _BATCH / 2}


def _galaxy_read(constraint: Mapping[str, str]) -> dict[str, str]:
    """A constraint after GALAXY's round trip: written as "[domain] slot value ...", read back through BERT.

    A value holding a slot name is cut there ("conference room 100" -> room "100"),
    and BERT's tokenizer rewrites it ("chef chu 's" -> "chef chu's").
    """
    written: dict[str, list[str]] = {}
    for domain_slot in SLOTS:
        if domain_slot in constraint:
            domain, slot = domain_slot.split("-")
            written.setdefault(domain, []).extend([slot, *bert_text(constraint[domain_slot]).split()])
    words = [word for domain, words in written.items() for word in [f"[{domain}]", *words]]
    read: dict[str, str] = {}
    domain = None
    for index, word in enumerate(words):
        if "[" in word:
            domain = word[1:-1] if word[1:-1] in INFORMABLE else domain
        elif word in _SLOT_NAMES and domain is not None:
            value = list(takewhile(lambda w: "[" not in w and w not in _SLOT_NAMES, words[index + 1 :]))
            if value:
                read[f"{domain}-{word}"] = " ".join(value)
    return read


def _values_match(predicted: set[str], gold: set[str]) -> bool:
    """GALAXY's ``constraint_same``: both empty, or every value of each set is similar to one of the other's."""
    if not predicted or not gold:
        return not predicted and not gold
    return _covered(predicted, gold) and _covered(gold, predicted)


def _covered(values: set[str], others: set[str]) -> bool:
    """``setsub``: a value with no similar one among ``others`` is allowed only if it holds a ``_MINOR`` word."""
    unmatched = (value for value in values if not any(_similar(value, other) for other in others))
    return all(any(minor in value for minor in _MINOR) for value in unmatched)


def _similar(first: str, second: str) -> bool:
    """``similar``: equal, one inside the other, or the same first or last word."""
    return (first == second or first in second or second in first or first.split()[0] == second.split()[0]
            or first.split()[-1] == second.split()[-1])  # fmt: skip


METRICS = (*DEFINITIONS, "todrl")
"""``--incar-metric``: the published definitions, and todrl's own."""
DESCRIPTIONS = {
    "labes": "LABES's metric.py on LABES's references: exact Match, <go_r> BLEU",
    "galaxy": "GALAXY's eval.py on LABES's references: fuzzy Match, <sos_r> BLEU",
    "todrl": "todrl's own: every dialogue, requested slots, todrl's references",
}


def incar_evaluator(
    metric: str, dialogues: Sequence[Dialogue], data_dir: str | Path, split: str = "test"
) -> InCarEvaluator | PublishedInCarEvaluator:
    """One definition's evaluator: todrl's scores ``dialogues``, LABES's and GALAXY's LABES's references of ``split``."""
    if metric == "todrl":
        return InCarEvaluator(dialogues)
    if metric not in DEFINITIONS:
        raise ValueError(f"unknown In-Car metric {metric!r}: expected one of {METRICS}")
    return PublishedInCarEvaluator.from_data_dir(data_dir, split, metric)
