"""Why dev dialogues fail Inform: a wrong belief state, or no venue offered at all?

Inform holds for a goal domain when the last venue a response offered (a
name or train-id placeholder in a turn about that domain) is among the
database matches of the goal. So a failed domain either never got an offer,
or got one whose belief state matched the wrong venues. This counts both per
checkpoint on the run's dev dialogues, Inform and Success again with the gold
states in place of the generated ones (the share a perfect state tracker would
win), and how often the greedy response offers where the gold one does.
`--per-domain` adds the outcomes per goal domain and, for the wrong venues,
the slots in which the state at the domain's last offer differs from the gold
state of that turn; where none does, the state is not what went wrong (the
offer came before the user gave every constraint, or the gold state of that
turn misses the goal too, as Inform with gold states shows it can).

    python scripts/inform_failures.py --config configs/probe_multiwoz21_dev.yaml runs/bench/multiwoz21/sft/best
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import NamedTuple

from rewards import parse_target, response_slots

from todrl.evaluate.dst import FUZZY_THRESHOLD
from todrl.evaluate.fuzzy import partial_ratio
from todrl.evaluate.multiwoz import SEARCHABLE_DOMAINS, dialogue_inform_success
from todrl.models import load_merged
from todrl.rl.evaluation import DevEvaluation
from todrl.rl.probe import probe_parser, probe_setup

OFFERS = {"name", "id"}
"""The placeholders that offer a venue or a train."""
STATUSES = ("informed", "offered, wrong venues", "never offered")


class Outcome(NamedTuple):
    """One goal domain that needs an offer, and what became of it."""

    domain: str
    status: str
    """One of `STATUSES`."""
    state_errors: tuple[str, ...] = ()
    """For wrong venues: how the state at the domain's last offer differs from the gold one ("food: value wrong");
    empty when they agree."""


def failures(evaluation: DevEvaluation, predictions) -> Counter[str]:
    """Per goal domain that needs an offer: informed, offered but wrong, or never offered."""
    return Counter(outcome.status for outcome in goal_outcomes(evaluation, predictions))


def goal_outcomes(evaluation: DevEvaluation, predictions) -> list[Outcome]:
    """The outcome of every goal domain that needs an offer, dialogue by dialogue."""
    evaluator = evaluation.corpus.evaluator("standard")
    outcomes = []
    for view in evaluator.dialogue_views(predictions):
        reference, responses, domains = view.reference, view.responses, view.domains
        inform, _ = dialogue_inform_success(reference.goal, responses, view.states, domains, reference.booked,
                                            evaluator.venues)
        for domain, part in reference.goal.items():
            placeholder = "TRAINID" if domain == "train" else "NAME"
            if domain not in SEARCHABLE_DOMAINS or "name" in part.informable:
                continue
            offers = [turn for turn, (text, active) in enumerate(zip(responses, domains))
                      if domain in active and placeholder in text]  # fmt: skip
            if inform[domain] or not offers:
                outcomes.append(Outcome(domain, STATUSES[0] if inform[domain] else STATUSES[2]))
            else:
                last = offers[-1]
                errors = state_errors(view.states[last].get(domain, {}), reference.states[last].get(domain, {}))
                outcomes.append(Outcome(domain, STATUSES[1], errors))
    return outcomes


def state_errors(predicted: dict[str, str], gold: dict[str, str]) -> tuple[str, ...]:
    """Each slot of one domain's state that is wrong (holding another slot's gold value: "destination: the value
    of departure"), missing or extra, values compared as the standard DST does."""
    errors = []
    for slot in sorted(predicted.keys() | gold.keys()):
        if slot not in gold:
            errors.append(f"{slot}: extra slot")
        elif slot not in predicted:
            errors.append(f"{slot}: slot missing")
        elif not _same(predicted[slot], gold[slot]):
            swapped = [other for other in gold if other != slot and _same(predicted[slot], gold[other])]
            errors.append(f"{slot}: {'the value of ' + swapped[0] if swapped else 'value wrong'}")
    return tuple(errors)


def _same(predicted: str, gold: str) -> bool:
    return partial_ratio(predicted, gold) > FUZZY_THRESHOLD


def per_domain_table(rows: list[tuple[str, list[Outcome]]]) -> list[str]:
    """Outcomes per goal domain, one row per checkpoint and domain: which domains the failures sit in."""
    lines = ["| checkpoint | domain | informed | offered, wrong venues | never offered |", "|---|---|---|---|---|"]
    for checkpoint, outcomes in rows:
        counts = Counter((outcome.domain, outcome.status) for outcome in outcomes)
        for domain in sorted({outcome.domain for outcome in outcomes}):
            cells = [str(counts[(domain, status)]) for status in STATUSES]
            lines.append(f"| {checkpoint} | {domain} | " + " | ".join(cells) + " |")
    return lines


def wrong_venue_table(rows: list[tuple[str, list[Outcome]]]) -> list[str]:
    """Why the offered venues were wrong: the state's slot errors at the last offer, or none (not the state)."""
    lines = ["| checkpoint | wrong-venue domains | state right at the offer | slot errors at the offer (commonest) |",
             "|---|---|---|---|"]
    for checkpoint, outcomes in rows:
        wrong = [outcome for outcome in outcomes if outcome.status == STATUSES[1]]
        errors = Counter(f"{o.domain}-{error}" for o in wrong for error in o.state_errors)
        common = ", ".join(f"{error} {count}" for error, count in errors.most_common(8))
        lines.append(f"| {checkpoint} | {len(wrong)} | {sum(not o.state_errors for o in wrong)} | {common} |")
    return lines


def offer_rates(evaluation: DevEvaluation, texts: list[str]) -> tuple[int, int, int, int]:
    """(gold-offer turns, of them offered; other turns, of them offered) for greedy `texts`."""
    gold = [bool(response_slots(parse_target(e.target).response) & OFFERS) for e in evaluation.examples]
    offered = [bool(response_slots(parse_target(t).response) & OFFERS) for t in texts]
    return (sum(gold), sum(g and o for g, o in zip(gold, offered)),
            len(gold) - sum(gold), sum(o and not g for g, o in zip(gold, offered)))


def main(argv: list[str] | None = None) -> None:
    parser = probe_parser(__doc__)
    parser.add_argument("--per-domain", action="store_true",
                        help="also the outcomes per goal domain, and the state errors behind wrong venues")
    args = parser.parse_args(argv)
    cfg, dialogues = probe_setup(args)
    if cfg.dataset != "multiwoz21":
        raise SystemExit(f"{args.config}: Inform is a MultiWOZ metric, the config names dataset {cfg.dataset!r}")
    evaluation = DevEvaluation.of_run(cfg, dialogues, 64)
    print(f"dev slice: {len(dialogues)} dialogues, {len(evaluation.examples)} turns\n")
    print("| checkpoint | Inform | Success | Inform, gold states | Success, gold states | informed | offered, wrong "
          "venues | never offered | offers at gold-offer turns | offers at other turns |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    by_domain: list[tuple[str, list[Outcome]]] = []
    for checkpoint in args.checkpoints:
        model, tokenizer = load_merged(checkpoint)
        predictions, texts = evaluation.generate(model.eval(), tokenizer)
        standard = evaluation.corpus.evaluator("standard")
        own = standard.evaluate(predictions, "<dev>", bleu=False, lexical=False)
        stateless = {d: [dataclasses.replace(t, state=None) for t in turns] for d, turns in predictions.items()}
        gold = standard.evaluate(stateless, "<dev, gold states>", bleu=False, lexical=False)
        outcomes = goal_outcomes(evaluation, predictions)
        by_domain.append((str(checkpoint), outcomes))
        counts = Counter(outcome.status for outcome in outcomes)
        offer_turns, offered, other_turns, offered_elsewhere = offer_rates(evaluation, texts)
        print(f"| {checkpoint} | {own.inform['total']} | {own.success['total']} | {gold.inform['total']} | "
              f"{gold.success['total']} | {counts['informed']} | {counts['offered, wrong venues']} | "
              f"{counts['never offered']} | {offered} / {offer_turns} | {offered_elsewhere} / {other_turns} |")

    if args.per_domain:
        print("\n" + "\n".join(per_domain_table(by_domain)) + "\n\n" + "\n".join(wrong_venue_table(by_domain)))


if __name__ == "__main__":
    main()
