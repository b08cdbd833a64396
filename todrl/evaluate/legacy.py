"""The older MultiWOZ evaluator of UBAR and PPTOD (DAMD's logic; what seed 004 and papers before 2021 report).

A port of UBAR's ``eval.py`` (PPTOD's ``E2E_TOD/eval.py`` is the same code),
with MTTOD's variant by name.  Where it departs from the standard evaluator:

* every turn counts: UBAR's ``if t == 0: continue`` skips a header row its
  reader puts before each dialogue (MTTOD has no header row, so it does skip
  the first real turn);
* a goal domain takes credit for a turn's placeholders only when it is one of
  the turn's gold domains (UBAR's; MTTOD credits every goal domain);
* the database is queried with the gold belief state or the generated one
  (``db_state``), through UBAR's ``queryJsons`` (`legacy_db`);
* a venue fits the goal when *any* offered venue does, and a new offer
  replaces the old one only when it brings a venue not offered yet;
* ``[value_reference]`` counts only in turns whose gold act is booking-book,
  booking-nobook or train-offerbooked;
* BLEU is UBAR's corpus BLEU on whitespace tokens, against references passed
  through UBAR's ``clean_text`` (`legacy_text`).

Other systems' outputs are read in UBAR's terms: placeholders renamed
(``[restaurant_name]``, ``[name]`` -> ``[value_name]``), replies tokenized and
cleaned like the references, state values cleaned like UBAR's corpus unless
already spelled as its database (a no-op on UBAR, PPTOD, GALAXY and MinTL
files).  MTTOD's code has no gold-state option and BLEU references of its own
preprocessing; here both variants offer both states and share the references.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import load_multiwoz, read_records
from todrl.data.normalize import normalize_text
from todrl.data.records import Dialogue
from todrl.evaluate.bleu import ReferenceBleu
from todrl.evaluate.legacy_db import VENUE_DOMAINS, LegacyDatabase
from todrl.evaluate.legacy_gold import REQUESTABLE, GoldDialogue, gold_dialogues, records_beside
from todrl.evaluate.legacy_state import UbarState, clean_state, reparse
from todrl.evaluate.legacy_text import clean_text, ubar_placeholders
from todrl.evaluate.predictions import Coverage, PredictedTurn, PredictionError, Predictions, check_coverage

DbState = Literal["gold", "generated"]
Variant = Literal["ubar", "mttod"]
VARIANTS: tuple[Variant, ...] = ("ubar", "mttod")


@dataclass
class LegacyResult:
    inform: float
    success: float
    bleu: float
    coverage: Coverage
    db_state: DbState
    variant: Variant

    @property
    def combined(self) -> float:
        return (self.inform + self.success) / 2 + self.bleu

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"combined": self.combined}


class LegacyEvaluator:
    """Inform / Success / BLEU as UBAR and PPTOD compute them (``variant="mttod"``: as MTTOD does).

    ``records`` are the dialogues' raw MultiWOZ records by id (`todrl.data.multiwoz.read_records`), which
    the gold side is rebuilt from (`legacy_gold`); by default they are read from the corpus folder that
    holds the database folder, as in the standard layout (``<data_dir>/db``).
    """

    def __init__(
        self, dialogues: Sequence[Dialogue], db: MultiWozDB, variant: Variant = "ubar", records: Mapping[str, Any] | None = None
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown legacy evaluator variant {variant!r}; expected one of {', '.join(VARIANTS)}")
        self.variant = variant
        if records is None:
            records = records_beside(db.db_dir.parent, [d.id for d in dialogues])
        self.gold = gold_dialogues(dialogues, records)
        self.db = LegacyDatabase(db, skip_none=variant == "mttod")
        references = {(d, turn): text for d, gold in self.gold.items() for turn, text in enumerate(gold.responses)}
        self._bleu = ReferenceBleu(references, legacy=True)

    @classmethod
    def from_data_dir(cls, data_dir: str | Path, split: str = "test", variant: Variant = "ubar") -> LegacyEvaluator:
        data_dir = Path(data_dir)
        dialogues = load_multiwoz(data_dir, split)
        return cls(dialogues, MultiWozDB(data_dir / "db"), variant, read_records(data_dir, split))

    def evaluate(self, predictions: Predictions, source: str | Path = "<predictions>", db_state: DbState = "gold") -> LegacyResult:
        coverage = check_coverage(predictions, {d: len(gold.responses) for d, gold in self.gold.items()}, source)
        informed = succeeded = 0
        hypotheses: list[tuple[tuple[str, int], str]] = []
        for dialogue_id, turns in predictions.items():
            gold = self.gold[dialogue_id]
            responses = [clean_text(normalize_text(ubar_placeholders(turn.response))) for turn in turns]
            hypotheses += (((dialogue_id, turn), text) for turn, text in enumerate(responses))
            states = gold.states if db_state == "gold" else self._generated_states(turns, source, dialogue_id)
            inform, success = self._dialogue(gold, responses, states)
            informed += inform
            succeeded += success
        count = max(len(predictions), 1)
        return LegacyResult(
            inform=100 * informed / count,
            success=100 * succeeded / count,
            bleu=self._bleu.score(hypotheses),
            coverage=coverage,
            db_state=db_state,
            variant=self.variant,
        )

    def _dialogue(self, gold: GoldDialogue, responses: Sequence[str], states: Sequence[UbarState]) -> tuple[bool, bool]:
        """UBAR's ``_evaluateGeneratedDialogue`` (hard match and success)."""
        offered: dict[str, tuple[str, ...]] = {domain: () for domain in gold.goal}
        provided: dict[str, set[str]] = {domain: set() for domain in gold.goal}
        for index in range(1 if self.variant == "mttod" else 0, len(responses)):
            response = responses[index]
            for domain in gold.goal:
                if self.variant == "ubar" and domain not in gold.domains[index]:
                    continue
                if domain in VENUE_DOMAINS and ("[value_name]" in response or "[value_id]" in response):
                    offered[domain] = self._offer(domain, offered[domain], states[index])
                for slot in REQUESTABLE:
                    if f"[value_{slot}]" in response and (slot != "reference" or gold.booking[index]):
                        provided[domain].add(slot)
        inform = True
        for domain, goal in gold.goal.items():
            if "name" in goal.informable or domain not in VENUE_DOMAINS:
                continue
            if domain == "train" and not offered[domain] and "id" not in goal.requestable:
                continue
            inform &= bool(set(offered[domain]) & set(self.db.venues(domain, goal.informable)))
        success = inform and all(goal.requestable <= provided[domain] for domain, goal in gold.goal.items())
        return inform, success

    def _offer(self, domain: str, offered: tuple[str, ...], state: UbarState) -> tuple[str, ...]:
        """Venues on offer after a turn that names one: the new query's, when it brings one not offered yet."""
        venues = self.db.venues(domain, state[domain]) if state.get(domain) else ()
        return venues if venues and any(venue not in offered for venue in venues) else offered

    def _generated_states(self, turns: Sequence[PredictedTurn], source: str | Path, dialogue_id: str) -> list[UbarState]:
        states = []
        for index, turn in enumerate(turns):
            if turn.state is None:
                raise PredictionError(source, "db_state='generated' needs a predicted 'state' in every turn", dialogue_id, index)
            states.append(reparse(clean_state(turn.state, keep=self.db.spelled)))
        return states
