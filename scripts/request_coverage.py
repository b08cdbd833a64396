"""Where do a policy's greedy generations answer the user's requests: in the act span, the response, or neither?

Rg counts a requested slot once an informing act or a response placeholder
names it (``request_spans="either"``); Success reads the response alone. This
counts, over the dev turns that carry requests, the requested slots each span
gives, for each checkpoint and for the gold targets, so a gap between the two
spans (the act answering where the response does not) is visible.

    python scripts/request_coverage.py --config configs/probe_multiwoz21_dev.yaml runs/bench/multiwoz21/sft/best
"""

from __future__ import annotations

from rewards.core import INFORMING_ACTS
from rewards.spans import parse_target, response_slots

from todrl.format import Example, build_examples
from todrl.generation import generate_texts
from todrl.models import load_merged
from todrl.rl.probe import probe_parser, probe_setup


def coverage(examples: list[Example], texts: list[str]) -> dict[str, int]:
    counts = {"turns": 0, "requested": 0, "act": 0, "response": 0, "either": 0}
    for example, text in zip(examples, texts):
        requested = {slot for slots in example.requested.values() for slot in slots}
        if not requested:
            continue
        target = parse_target(text)
        acts = {slot for acts in target.dialogue_act.values() for act, slots in acts.items() if act in INFORMING_ACTS
                for slot in slots}
        placeholders = response_slots(target.response)
        counts["turns"] += 1
        counts["requested"] += len(requested)
        counts["act"] += len(requested & acts)
        counts["response"] += len(requested & placeholders)
        counts["either"] += len(requested & (acts | placeholders))
    return counts


def main(argv: list[str] | None = None) -> None:
    args = probe_parser(__doc__).parse_args(argv)
    cfg, dialogues = probe_setup(args)
    examples = build_examples(dialogues)
    rows = [("gold targets", coverage(examples, [e.target for e in examples]))]
    for checkpoint in args.checkpoints:
        model, tokenizer = load_merged(checkpoint)
        texts = generate_texts(model.eval(), tokenizer, [e.source for e in examples], batch_size=64,
                               max_source_length=cfg.max_source_length, max_new_tokens=cfg.max_new_tokens)
        rows.append((str(checkpoint), coverage(examples, texts)))
    print(f"dev slice: {rows[0][1]['turns']} turns with requests, {rows[0][1]['requested']} requested slots\n")
    print("| generations | in an informing act | in a response placeholder | in either |")
    print("|---|---|---|---|")
    for name, counts in rows:
        print(f"| {name} | {counts['act']} | {counts['response']} | {counts['either']} |")


if __name__ == "__main__":
    main()
