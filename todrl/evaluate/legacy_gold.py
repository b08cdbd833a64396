"""The gold side of the legacy evaluator, as UBAR's preprocessing of MultiWOZ 2.1 leaves it.

UBAR's evaluator reads its own preprocessed corpus, not the raw annotation,
so these are rebuilt from the raw records the way its ``preprocess2.1.py``
builds them: the goal's constraints cleaned; per turn, the gold state (over
the goal's domains only, raw values cleaned, a value never forgotten once
set), the gold turn domains (domains whose state changed, then those the
system act names, else the last turn's), and the booking pointer (the system
act holds booking-book, booking-nobook or train-offerbooked).  todrl's reader
normalizes values and files booking acts under a domain, which moves the
legacy scores by up to 0.6 points, hence the raw records.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from todrl.data.errors import DataError
from todrl.data.multiwoz import SPLITS, read_records
from todrl.data.records import Dialogue
from todrl.data.normalize import DOMAINS
from todrl.evaluate.legacy_state import UbarState, reparse, ubar_slot
from todrl.evaluate.legacy_text import clean_text, clean_value

REQUESTABLE = ("phone", "address", "postcode", "reference", "id")
"""The requests Success checks (the rest cannot be delexicalized reliably, says UBAR)."""
_BOOKING_ACTS = frozenset({"booking-book", "booking-nobook", "train-offerbooked"})


@dataclass(frozen=True)
class GoalDomain:
    informable: dict[str, str]
    requestable: frozenset[str]


@dataclass(frozen=True)
class GoldDialogue:
    """One test dialogue as UBAR's evaluator sees it (one entry per system turn in the lists)."""

    goal: dict[str, GoalDomain]
    states: list[UbarState]
    domains: list[frozenset[str]]
    booking: list[bool]
    responses: list[str]
    """BLEU references: todrl's delexicalized replies through UBAR's ``clean_text``."""


def gold_dialogues(dialogues: Sequence[Dialogue], records: Mapping[str, Any]) -> dict[str, GoldDialogue]:
    """Gold views of ``dialogues``; ``records`` are their raw MultiWOZ records by todrl id (`read_records`)."""
    missing = [d.id for d in dialogues if d.id not in records]
    if missing:
        raise ValueError(f"no raw record for {len(missing)} dialogues, e.g. {', '.join(missing[:3])}")
    return {d.id: _gold(d, records[d.id]) for d in dialogues}


def records_beside(data_dir: Path, dialogue_ids: Sequence[str]) -> dict[str, Any]:
    """Raw records of ``dialogue_ids`` from whichever splits of the corpus in ``data_dir`` hold them."""
    wanted, found = set(dialogue_ids), {}
    for split in ("test", "val", "train"):
        if wanted <= found.keys():
            break
        try:
            records = read_records(data_dir, split)
        except DataError:
            continue  # a split the folder does not have
        found |= {i: record for i, record in records.items() if i in wanted}
    missing = sorted(wanted - found.keys())
    if missing:
        raise DataError(data_dir, f"the legacy evaluator needs the raw records of {len(missing)} dialogues "
                        f"({', '.join(missing[:3])}) and found them in none of its splits ({', '.join(SPLITS)})")
    return found


def _goal(raw: Mapping[str, Any]) -> dict[str, GoalDomain]:
    """UBAR's ``_parseGoal``; a domain whose goal has no ``info`` asks for nothing."""
    goal = {}
    for domain in _goal_domains(raw):
        part = raw[domain]
        informable, requests = {}, set()
        if "info" in part:
            asked = {ubar_slot(slot) for slot in part.get("reqt", [])}
            requests = asked & ({"id"} if domain == "train" else set(REQUESTABLE))
            if "book" in part:
                requests.add("reference")
            for slot, value in part["info"].items():
                informable[ubar_slot(slot)] = clean_value(domain, ubar_slot(slot), str(value))
        goal[domain] = GoalDomain(informable, frozenset(requests))
    return goal


def _goal_domains(raw: Mapping[str, Any]) -> list[str]:
    return [domain for domain, part in raw.items() if domain in DOMAINS and part]


def _gold(dialogue: Dialogue, record: Mapping[str, Any]) -> GoldDialogue:
    domains_in_goal = _goal_domains(record["goal"])
    accumulated: dict[str, dict[str, str]] = {domain: {} for domain in domains_in_goal}
    states, domains, booking = [], [], []
    turn_domains = frozenset({"general"})
    for entry in record["log"][1::2]:
        changed = []
        for domain, slots in accumulated.items():
            before = dict(slots)
            part = entry["metadata"].get(domain, {})
            for slot, value in list(part.get("semi", {}).items()) + list(part.get("book", {}).items()):
                if slot != "booked" and (cleaned := clean_value(domain, ubar_slot(slot), str(value))):
                    slots[ubar_slot(slot)] = cleaned
            if slots and slots != before:
                changed.append(domain)
        acts = {name.lower() for name in entry.get("dialog_act") or {}} if isinstance(entry.get("dialog_act"), dict) else set()
        turn_domains = _turn_domains(changed, {act.split("-")[0] for act in acts}, turn_domains)
        states.append(reparse(accumulated))
        domains.append(turn_domains)
        booking.append(bool(acts & _BOOKING_ACTS))
    return GoldDialogue(
        goal=_goal(record["goal"]),
        states=states,
        domains=domains,
        booking=booking,
        responses=[clean_text(turn.system_delex) for turn in dialogue.turns],
    )


def _turn_domains(changed: list[str], acted: set[str], previous: frozenset[str]) -> frozenset[str]:
    """UBAR's gold turn domain; "booking" and, next to other domains, "general" do not count as act domains."""
    if len(acted) > 1:
        acted -= {"general"}
    if len(acted) > 1:
        acted -= {"booking"}
    domains = set(changed) | (acted - {"booking"})
    if not domains:
        return previous
    if len(domains) == 2:
        domains.discard("general")
    return frozenset(domains)
