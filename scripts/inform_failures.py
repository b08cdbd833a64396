"""Why dev dialogues fail Inform: a wrong belief state, or no venue offered at all?

Inform holds for a goal domain when the last venue a response offered (a
name or train-id placeholder in a turn about that domain) is among the
database matches of the goal. So a failed domain either never got an offer,
or got one whose belief state matched the wrong venues. This counts both per
checkpoint on the run's dev dialogues, Inform and Success again with the gold
states in place of the generated ones (the share a perfect state tracker would
win), and how often the greedy response offers where the gold one does.

    python scripts/inform_failures.py --config configs/probe_multiwoz21_dev.yaml runs/bench/multiwoz21/sft/best
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from rewards import parse_target, response_slots

from todrl.evaluate.multiwoz import SEARCHABLE_DOMAINS, dialogue_inform_success
from todrl.models import load_merged
from todrl.rl.evaluation import DevEvaluation
from todrl.rl.probe import probe_parser, probe_setup

OFFERS = {"name", "id"}
"""The placeholders that offer a venue or a train."""


def failures(evaluation: DevEvaluation, predictions) -> Counter[str]:
    """Per goal domain that needs an offer: informed, offered but wrong, or never offered."""
    evaluator = evaluation.corpus.evaluator("standard")
    counts: Counter[str] = Counter()
    for view in evaluator.dialogue_views(predictions):
        reference, responses, domains = view.reference, view.responses, view.domains
        inform, _ = dialogue_inform_success(reference.goal, responses, view.states, domains, reference.booked,
                                            evaluator.venues)
        for domain, part in reference.goal.items():
            placeholder = "TRAINID" if domain == "train" else "NAME"
            if domain not in SEARCHABLE_DOMAINS or "name" in part.informable:
                continue
            offered = any(domain in active and placeholder in text for text, active in zip(responses, domains))
            if inform[domain]:
                counts["informed"] += 1
            else:
                counts["offered, wrong venues" if offered else "never offered"] += 1
    return counts


def offer_rates(evaluation: DevEvaluation, texts: list[str]) -> tuple[int, int, int, int]:
    """(gold-offer turns, of them offered; other turns, of them offered) for greedy `texts`."""
    gold = [bool(response_slots(parse_target(e.target).response) & OFFERS) for e in evaluation.examples]
    offered = [bool(response_slots(parse_target(t).response) & OFFERS) for t in texts]
    return (sum(gold), sum(g and o for g, o in zip(gold, offered)),
            len(gold) - sum(gold), sum(o and not g for g, o in zip(gold, offered)))


def main(argv: list[str] | None = None) -> None:
    args = probe_parser(__doc__).parse_args(argv)
    cfg, dialogues = probe_setup(args)
    if cfg.dataset != "multiwoz21":
        raise SystemExit(f"{args.config}: Inform is a MultiWOZ metric, the config names dataset {cfg.dataset!r}")
    evaluation = DevEvaluation.of_run(cfg, dialogues, 64)
    print(f"dev slice: {len(dialogues)} dialogues, {len(evaluation.examples)} turns\n")
    print("| checkpoint | Inform | Success | Inform, gold states | Success, gold states | informed | offered, wrong "
          "venues | never offered | offers at gold-offer turns | offers at other turns |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for checkpoint in args.checkpoints:
        model, tokenizer = load_merged(checkpoint)
        predictions, texts = evaluation.generate(model.eval(), tokenizer)
        standard = evaluation.corpus.evaluator("standard")
        own = standard.evaluate(predictions, "<dev>", bleu=False, lexical=False)
        stateless = {d: [dataclasses.replace(t, state=None) for t in turns] for d, turns in predictions.items()}
        gold = standard.evaluate(stateless, "<dev, gold states>", bleu=False, lexical=False)
        counts = failures(evaluation, predictions)
        offer_turns, offered, other_turns, offered_elsewhere = offer_rates(evaluation, texts)
        print(f"| {checkpoint} | {own.inform['total']} | {own.success['total']} | {gold.inform['total']} | "
              f"{gold.success['total']} | {counts['informed']} | {counts['offered, wrong venues']} | "
              f"{counts['never offered']} | {offered} / {offer_turns} | {offered_elsewhere} / {other_turns} |")


if __name__ == "__main__":
    main()
