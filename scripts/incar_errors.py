"""Where a policy's remaining In-Car failures come from, under the definitions its scores are reported with.

Match and SuccF1 are LABES's ``metric.py`` as `todrl.evaluate.incar_published`
computes them (LABES's references and its constraint cleaning), JGA is todrl's
exact per-turn JGA (`todrl.evaluate.dst`). Each failure is read through the
same steps as the score, so the counts add up to it (the report checks this):

- Match: per counted dialogue, each of the 11 informable slots is right, or its
  value is wrong, missing or extra; a failed dialogue is also put down to a
  truncated generation, or to LABES reading the predicted state at another
  turn than the gold one (the state at the gold turn would have matched);
- JGA: the same per slot over every failed turn, and whether the error was
  already there the turn before (state tracking errors persist);
- a wrong or missing value is put down to, first applicable: the same words
  spelled otherwise ("spelling": spacing, punctuation, plural), one value's words
  inside the other's ("span boundary": "quickest" for "quickest route"), a
  predicted value that the cleaning drops because it is no listed entity, the
  gold value written in the reply but not in the state, a gold value never seen
  for that slot in training ("unseen value"); an extra slot's value was said by
  the driver (the gold state leaves it out), or never said and unseen in
  training for that slot, or never said;
- SuccF1: the placeholder types missed and added, per type;
- truncation (dev only: it needs the raw generation): no ``<eos_r>``, and how
  many of those hit the token limit.

Dev predictions are generated once per checkpoint and cached next to the
report (``<report>.<run>.dev.json`` and its raw texts); test predictions are
read from a saved file.

    OMP_NUM_THREADS=1 python scripts/incar_errors.py --data-dir ../shared/data/kvret \\
        --checkpoint ../bench/runs/bench_full/incar/sft/best \\
        --test-predictions ../bench/runs/bench_full/incar/sft/predictions_test.json --output docs/incar_errors.md
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from todrl.data import load_dialogues, span_vocabulary
from todrl.data.records import BeliefState, Dialogue
from todrl.evaluate.dst import DstEvaluator, text_spelling
from todrl.evaluate.incar_labes import LabesKvret, LabesTurn, load_labes_kvret
from todrl.evaluate.incar_published import PublishedInCarEvaluator, _placeholder_types
from todrl.evaluate.incar_text import twelve_hour
from todrl.evaluate.predictions import PredictedTurn, Predictions, dump_predictions, load_predictions
from todrl.format import build_examples

WRONG, MISSING, EXTRA = "value wrong", "slot missing", "extra slot"
SPELLING, SPAN, DROPPED, IN_REPLY, UNSEEN, OTHER = ("spelling", "span boundary", "dropped: not a listed entity",
                                                    "in the reply, not the state", "unseen value", "other")
SAID, NOT_SAID = "said by the driver, not in the gold state", "never said"
"""Causes of an extra slot (besides an unseen value)."""
TRUNCATED, OTHER_TURN, SLOTS_WRONG = "truncated generation", "state read at another turn", "slot errors"
"""Causes of a failed Match dialogue."""


@dataclass(frozen=True, order=True)
class SlotError:
    slot: str
    """"domain-slot"."""
    kind: str
    """`WRONG`, `MISSING` or `EXTRA`."""
    cause: str = OTHER


@dataclass
class Breakdown:
    """Counts of one checkpoint's (or file's) failures on one split."""

    match: Counter[str] = field(default_factory=Counter)
    """Failed Match dialogues by cause."""
    match_slots: Counter[SlotError] = field(default_factory=Counter)
    match_counted: int = 0
    jga_slots: Counter[SlotError] = field(default_factory=Counter)
    jga_new: Counter[SlotError] = field(default_factory=Counter)
    """JGA slot errors not already present at the previous turn."""
    jga_failed: int = 0
    jga_turns: int = 0
    success_missed: Counter[str] = field(default_factory=Counter)
    success_added: Counter[str] = field(default_factory=Counter)
    success_hit: int = 0
    truncated: Counter[str] = field(default_factory=Counter)
    """Turns without ``<eos_r>``, at the token limit, and the failures that have one."""
    examples: dict[str, str] = field(default_factory=dict)
    """The first example of each "metric: error / cause"."""
    scores: dict[str, float] = field(default_factory=dict)
    """The evaluators' own figures, which the counts are checked against."""


def flat(state: BeliefState | None) -> dict[str, str]:
    """A belief state as "domain-slot" -> value, empty values left out."""
    return {f"{d.lower()}-{s}": v for d, slots in (state or {}).items() for s, v in slots.items() if v}


def words(text: str) -> list[str]:
    """Letters and digits, apostrophes joined and a final "s" cut: "chef chu 's" and "chef chus" read alike, as do
    "gas station" and "gas stations"."""
    joined = re.sub(r"\s*'\s*", "", text.lower())
    return [word.removesuffix("s") or word for word in re.findall(r"[a-z0-9]+", joined)]


def inside(short: str, long: str) -> bool:
    """Whether the words of `short` run, in order, inside those of `long`."""
    return f" {' '.join(words(short))} " in f" {' '.join(words(long))} "


def slot_errors(predicted: Mapping[str, str], gold: Mapping[str, str]) -> list[SlotError]:
    """What differs between two flat states, slot by slot (an empty value counts as absent)."""
    errors = []
    for slot in sorted(predicted.keys() | gold.keys()):
        guess, truth = predicted.get(slot, ""), gold.get(slot, "")
        if guess != truth:
            kind = EXTRA if not truth else MISSING if not guess else WRONG
            errors.append(SlotError(slot, kind))
    return errors


@dataclass(frozen=True)
class Context:
    """What a slot error is explained by, besides its two values."""

    reply: str
    """The predicted reply of the turn."""
    heard: str
    """The driver's words up to the turn."""
    seen: Mapping[str, set[str]]
    """Every value of each slot in the training states."""


def cause(error: SlotError, predicted: str, gold: str, context: Context) -> SlotError:
    """The first applicable cause of a slot error; `predicted` is the value before any entity filtering."""
    if error.kind == EXTRA:
        found = (SAID if words(predicted) and inside(predicted, context.heard)
                 else UNSEEN if predicted not in context.seen.get(error.slot, set()) else NOT_SAID)  # fmt: skip
    elif predicted and "".join(words(predicted)) == "".join(words(gold)):
        found = SPELLING
    elif predicted and (inside(predicted, gold) or inside(gold, predicted)):
        found = SPAN
    elif error.kind == MISSING and predicted:
        found = DROPPED
    elif error.kind == MISSING and words(gold) and inside(gold, context.reply):
        found = IN_REPLY
    elif gold not in context.seen.get(error.slot, set()):
        found = UNSEEN
    else:
        found = OTHER
    return SlotError(error.slot, error.kind, found)


def heard(dialogue: Dialogue, turn: int) -> str:
    """Everything the driver has said up to and including `turn`."""
    return " ".join(t.user for t in dialogue.turns[: turn + 1])


def labes_seen(corpus: LabesKvret) -> dict[str, set[str]]:
    """Every cleaned constraint value of LABES's training split, per slot."""
    seen: dict[str, set[str]] = {}
    for dialogue in corpus.splits["train"].values():
        for turn in dialogue.turns:
            for slot, value in turn.constraint.items():
                seen.setdefault(slot, set()).add(value)
    return seen


def todrl_seen(dialogues: Iterable[Dialogue]) -> dict[str, set[str]]:
    """Every gold state value of todrl's training split, per slot."""
    seen: dict[str, set[str]] = {}
    for dialogue in dialogues:
        for turn in dialogue.turns:
            for slot, value in flat(turn.belief_state).items():
                seen.setdefault(slot, set()).add(value)
    return seen


Truncation = dict[tuple[str, int], bool]
"""(dialogue id, turn) -> whether the generation hit the token limit, for the turns without ``<eos_r>``."""


Row = tuple[LabesTurn, Any, Any]
"""A LABES reference turn, the prediction as the evaluator reads it, and the gold reply as it reads that."""


def published_rows(evaluator: PublishedInCarEvaluator, dialogue_id: str,
                   predicted: Sequence[PredictedTurn]) -> list[Row]:
    """The turns the published evaluator scores in one dialogue, each read as it reads it."""
    labes = evaluator.dialogues[dialogue_id]
    pairs = zip(labes.turns, evaluator.references.get(dialogue_id, ()))
    return [(turn, evaluator._predicted(turn, predicted[turn.position], labes.domain), gold)
            for turn, gold in pairs if turn.position < len(predicted)]  # fmt: skip


def match_breakdown(evaluator: PublishedInCarEvaluator, dialogues: Sequence[Dialogue], predictions: Predictions,
                    seen: Mapping[str, set[str]], truncated: Truncation, out: Breakdown) -> None:
    """LABES's Match and SuccF1, dialogue by dialogue, through the evaluator's own steps (turn choice, cleaning)."""
    by_id = {dialogue.id: dialogue for dialogue in dialogues}
    for dialogue_id, predicted in predictions.items():
        rows = published_rows(evaluator, dialogue_id, predicted)
        if not rows:
            continue
        missed = _success(rows, out)
        if any((dialogue_id, turn.position) in truncated for turn, _, _ in rows):
            out.truncated["SuccF1 misses"] += missed
        gold_at = _last_placeholder(gold for _, _, gold in rows)
        gold = evaluator._constraint(rows[gold_at][2].constraint if gold_at is not None else {})
        if not any(gold.values()):
            continue
        out.match_counted += 1
        at = _last_placeholder(reply for _, reply, _ in rows)
        at = len(rows) - 1 if at is None else at
        if evaluator._constraint(rows[at][1].constraint) == gold:
            continue
        position = rows[at][0].position
        _match_slots(evaluator._constraint(rows[at][1].constraint), gold, predicted[position],
                     Context(predicted[position].response, heard(by_id[dialogue_id], position), seen), out)
        if (dialogue_id, position) in truncated:
            out.match[TRUNCATED] += 1
        elif evaluator._constraint(rows[gold_at][1].constraint) == gold:
            out.match[OTHER_TURN] += 1
        else:
            out.match[SLOTS_WRONG] += 1


def _match_slots(guess: Mapping[str, str], gold: Mapping[str, str], turn: PredictedTurn, context: Context,
                 out: Breakdown) -> None:
    """The slot errors of a failed Match, each explained by the predicted value before LABES's cleaning dropped it."""
    before = {slot: twelve_hour(value.lower()) for slot, value in flat(turn.state).items()}
    for error in slot_errors(_filled(guess), _filled(gold)):
        explained = cause(error, before.get(error.slot, ""), gold[error.slot], context)
        out.match_slots[explained] += 1
        note(out.examples, "Match", explained, before.get(error.slot, ""), gold[error.slot])


def note(examples: dict[str, str], metric: str, error: SlotError, predicted: str, gold: str) -> None:
    """Keep the first example of each error and cause, to show what the category holds."""
    shown = f"{error.slot}: {predicted or '-'!r} for {gold or '-'!r}"
    examples.setdefault(f"{metric}: {error.kind} / {error.cause}", shown)


def _last_placeholder(replies: Iterable) -> int | None:
    """Index of the last reply holding a placeholder: the turn whose constraint LABES's Match reads."""
    found = None
    for index, reply in enumerate(replies):
        if "[value" in reply.text:
            found = index
    return found


def _filled(constraint: Mapping[str, str]) -> dict[str, str]:
    return {slot: value for slot, value in constraint.items() if value}


def _success(rows: Sequence[Row], out: Breakdown) -> int:
    """LABES's SuccF1 terms of one dialogue (placeholder types of the cleaned replies, gold against predicted); the
    number missed."""
    predicted = {kind for _, reply, _ in rows for kind in _placeholder_types(reply.cleaned)}
    gold = {kind for _, _, reply in rows for kind in _placeholder_types(reply.cleaned)}
    out.success_hit += len(predicted & gold)
    out.success_missed.update(gold - predicted)
    out.success_added.update(predicted - gold)
    return len(gold - predicted)


def jga_breakdown(dialogues: Sequence[Dialogue], predictions: Predictions, seen: Mapping[str, set[str]],
                  truncated: Truncation, out: Breakdown) -> None:
    """todrl's exact per-turn JGA, turn by turn: the slot errors of every failed turn, values as `DstEvaluator` reads
    them."""
    by_id = {dialogue.id: dialogue for dialogue in dialogues}
    for dialogue_id, predicted in predictions.items():
        previous: set[SlotError] = set()
        for index, (turn, gold_turn) in enumerate(zip(predicted, by_id[dialogue_id].turns)):
            guess = {slot: value for slot, value in
                     ((s, text_spelling(s, v)[1]) for s, v in flat(turn.state).items()) if value}  # fmt: skip
            errors = slot_errors(guess, flat(gold_turn.belief_state))
            out.jga_turns += 1
            if not errors:
                previous = set()
                continue
            out.jga_failed += 1
            if (dialogue_id, index) in truncated:
                out.truncated["failed JGA turns"] += 1
            gold = flat(gold_turn.belief_state)
            context = Context(turn.response, heard(by_id[dialogue_id], index), seen)
            explained = {cause(e, guess.get(e.slot, ""), gold.get(e.slot, ""), context) for e in errors}
            for error in sorted(explained):  # the first example of a category is the same in every run
                note(out.examples, "JGA", error, guess.get(error.slot, ""), gold.get(error.slot, ""))
            out.jga_slots.update(explained)
            out.jga_new.update(explained - previous)
            previous = explained


def truncation(dialogues: Sequence[Dialogue], texts: Sequence[str], limited: Sequence[bool]) -> Truncation:
    """The turns whose raw generation has no ``<eos_r>``, in `build_examples` order, and whether each hit the limit."""
    examples = build_examples(dialogues, task="e2e")
    index: Counter[str] = Counter()
    found: Truncation = {}
    for example, text, limit in zip(examples, texts, limited, strict=True):
        if "<eos_r>" not in text:
            found[(example.dialogue_id, index[example.dialogue_id])] = limit
        index[example.dialogue_id] += 1
    return found


def generate_dev(checkpoint: Path, dialogues: Sequence[Dialogue], data_dir: Path, cache: Path,
                 max_new_tokens: int) -> tuple[Predictions, Truncation]:
    """Greedy dev predictions of a checkpoint, generated once and cached with their raw texts.

    `predict_checkpoint` keeps only the parsed spans; truncation needs the raw text, so this calls the function
    under it, `predict_dialogues`, in the same way.
    """
    texts_path = cache.with_suffix(".texts.json")
    made_by = {"checkpoint": str(checkpoint.resolve()), "max_new_tokens": max_new_tokens}
    raw = json.loads(texts_path.read_text()) if cache.exists() and texts_path.exists() else {}
    if {key: raw.get(key) for key in made_by} != made_by:
        from todrl.evaluate.generate import predict_dialogues
        from todrl.models import load_merged

        model, tokenizer = load_merged(checkpoint)
        predictions, texts = predict_dialogues(model.eval(), tokenizer, dialogues, span_vocabulary("incar", data_dir),
                                               progress=True, shortest_first=True, max_new_tokens=max_new_tokens)
        raw = made_by | {"texts": texts, "at_limit": [len(tokenizer(t).input_ids) >= max_new_tokens for t in texts]}
        dump_predictions(predictions, cache)
        texts_path.write_text(json.dumps(raw, indent=0) + "\n")
    return load_predictions(cache), truncation(dialogues, raw["texts"], raw["at_limit"])


def analyse(predictions: Predictions, split: str, data_dir: Path, truncated: Truncation | None) -> Breakdown:
    """Every count of one predictions file of `split`, with the evaluators' own scores to check them against."""
    corpus = load_labes_kvret(data_dir.resolve())
    dialogues = load_dialogues("incar", data_dir, split)
    evaluator = PublishedInCarEvaluator(corpus, split, "labes")
    out = Breakdown()
    domains = {dialogue.id: dialogue.services[0] for dialogue in dialogues}
    if truncated is not None:
        out.truncated.update({"turns without <eos_r>": len(truncated), "at the token limit": sum(truncated.values())})
        out.truncated.update(f"in {domains[dialogue_id]}" for dialogue_id, _ in truncated)
    truncated = truncated or {}
    match_breakdown(evaluator, dialogues, predictions, labes_seen(corpus), truncated, out)
    jga_breakdown(dialogues, predictions, todrl_seen(load_dialogues("incar", data_dir, "train")), truncated, out)
    published = evaluator.evaluate(predictions, split)
    jga = DstEvaluator(dialogues).evaluate(predictions, split)
    out.scores = {"Match": published.match, "SuccF1": published.success_f1, "BLEU": published.bleu,
                  "Combined": published.combined, "JGA": jga.joint_goal_accuracy}  # fmt: skip
    check(out)
    return out


def check(out: Breakdown) -> None:
    """The counts must give the evaluators' figures back, or the breakdown explains some other metric."""
    match = 100 * (out.match_counted - out.match.total()) / (out.match_counted + 1e-8)
    fp, fn = out.success_added.total(), out.success_missed.total()
    f1 = 100 * 2 * out.success_hit / max(2 * out.success_hit + fp + fn, 1)
    jga = 100 * (out.jga_turns - out.jga_failed) / max(out.jga_turns, 1)
    for name, ours in (("Match", match), ("SuccF1", f1), ("JGA", jga)):
        if abs(ours - out.scores[name]) > 0.01:
            raise SystemExit(f"the breakdown gives {name} {ours:.2f}, the evaluator {out.scores[name]:.2f}")


def counts_table(counts: Counter, columns: Sequence[str], top: int = 12,
                 examples: Mapping[str, str] | None = None) -> list[str]:
    """A markdown table of the commonest keys (a `SlotError` is one column per field), with the rest summed."""
    extra = ["example (predicted for gold)"] if examples is not None else []
    lines = ["| " + " | ".join([*columns, "count", *extra]) + " |", "|" + "---|" * (len(columns) + 1 + len(extra))]
    for key, count in counts.most_common(top):
        cells = [key.slot, key.kind, key.cause][: len(columns)] if isinstance(key, SlotError) else [str(key)]
        shown = [f"`{examples[key]}`" if key in examples else ""] if examples is not None else []
        lines.append("| " + " | ".join([*cells, str(count), *shown]) + " |")
    rest = counts.total() - sum(count for _, count in counts.most_common(top))
    if rest:
        cells = ["(the rest)", *[""] * (len(columns) - 1), str(rest), *[""] * len(extra)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def by(counts: Counter[SlotError], *fields: str, prefix: str = "") -> Counter:
    """Slot errors summed over the fields not named ("kind", "cause", "slot"), keyed `prefix` + "a / b"."""
    merged: Counter = Counter()
    for error, count in counts.items():
        merged[prefix + " / ".join(getattr(error, name) for name in fields)] += count
    return merged


@dataclass
class Source:
    """One predictions file to analyse, and where it came from."""

    name: str
    split: str
    origin: str
    predictions: Predictions
    truncated: Truncation | None
    """None when unknown (a saved file keeps no raw generation)."""


def summary(sources: Sequence[Source], outs: Sequence[Breakdown]) -> list[str]:
    """The main counts of every source side by side."""
    def row(label: str, value) -> str:
        return f"| {label} | " + " | ".join(str(value(out)) for out in outs) + " |"

    commonest = [key for key, _ in by(sum((o.jga_slots for o in outs), Counter()), "kind", "cause").most_common(6)]
    return ["| | " + " | ".join(f"{s.name}, {s.split}" for s in sources) + " |", "|---|" + "---|" * len(sources),
            row("Match / SuccF1 / JGA", lambda o: " / ".join(f"{o.scores[k]:.2f}" for k in ("Match", "SuccF1", "JGA"))),
            row("Match: failed / counted dialogues", lambda o: f"{o.match.total()} / {o.match_counted}"),
            row("Match: state read at another turn", lambda o: o.match[OTHER_TURN]),
            *(row(f"Match slots: {kind}", lambda o, kind=kind: by(o.match_slots, "kind")[kind])
              for kind in (WRONG, MISSING, EXTRA)),
            row("JGA: failed / turns", lambda o: f"{o.jga_failed} / {o.jga_turns}"),
            *(row(f"JGA slots: {key}", lambda o, key=key: by(o.jga_slots, "kind", "cause")[key]) for key in commonest),
            row("SuccF1: missed / added types", lambda o: f"{o.success_missed.total()} / {o.success_added.total()}"),
            row("SuccF1: commonest misses",
                lambda o: ", ".join(f"{k} {v}" for k, v in o.success_missed.most_common(3))),
            row("turns without <eos_r>",
                lambda o: o.truncated["turns without <eos_r>"] if o.truncated else "n/a")]  # fmt: skip


def section(source: Source, out: Breakdown) -> list[str]:
    """One source's part of the report."""
    s = out.scores
    return [f"## {source.name}, {source.split}", "", f"From {source.origin}.", "",
            f"LABES Match {s['Match']:.2f}, SuccF1 {s['SuccF1']:.2f}, BLEU {s['BLEU']:.2f}, Combined "
            f"{s['Combined']:.2f}; todrl JGA {s['JGA']:.2f}.", "",
            *_match_lines(out), *_jga_lines(out), *_success_lines(out), *_truncation_lines(out)]  # fmt: skip


def _match_lines(out: Breakdown) -> list[str]:
    return [f"**Match**: {out.match.total()} of {out.match_counted} counted dialogues fail.", "",
            *counts_table(out.match, ["failed dialogue"]), "",
            "Their slot errors (in the constraint LABES reads, after its cleaning):", "",
            *counts_table(by(out.match_slots, "kind", "cause", prefix="Match: "), ["error / cause"], 12, out.examples),
            "", *counts_table(out.match_slots, ["slot", "error", "cause"], 10), ""]  # fmt: skip


def _jga_lines(out: Breakdown) -> list[str]:
    return [f"**JGA**: {out.jga_failed} of {out.jga_turns} turns fail, with {out.jga_slots.total()} slot errors, "
            f"{out.jga_new.total()} of them new at their turn (the rest carried over from the turn before):", "",
            *counts_table(by(out.jga_slots, "kind", "cause", prefix="JGA: "), ["error / cause"], 12, out.examples),
            "", *counts_table(out.jga_slots, ["slot", "error", "cause"], 10), ""]  # fmt: skip


def _success_lines(out: Breakdown) -> list[str]:
    types = Counter({f"missed {k}": v for k, v in out.success_missed.items()})
    types.update({f"added {k}": v for k, v in out.success_added.items()})
    return [f"**SuccF1**: {out.success_hit} placeholder types right, {out.success_missed.total()} missed, "
            f"{out.success_added.total()} added (per dialogue, in LABES's cleaned replies).", "",
            *counts_table(types, ["placeholder type"]), ""]  # fmt: skip


def _truncation_lines(out: Breakdown) -> list[str]:
    t = out.truncated
    if not t:
        return ["**Truncation**: not measurable (a saved predictions file keeps no raw generation).", ""]
    where = ", ".join(f"{count} {key}" for key, count in t.items() if key.startswith("in "))
    return [f"**Truncation**: {t['turns without <eos_r>']} turns without `<eos_r>` ({where or 'none'}), "
            f"{t['at the token limit']} of them at the token limit (`--max-new-tokens`); {t['failed JGA turns']} "
            f"failed JGA turns and {out.match[TRUNCATED]} failed Match dialogues are among them, and "
            f"{t['SuccF1 misses']} SuccF1 misses fall in dialogues with one.", ""]  # fmt: skip


NOTES = ("<!-- notes: hand-written; a rerun of the script keeps what lies between these two lines -->",
         "<!-- end of notes -->")


def kept_notes(path: Path) -> list[str]:
    """The hand-written part of an earlier report, between the `NOTES` lines: a rerun refreshes the numbers only."""
    text = path.read_text() if path.exists() else ""
    if NOTES[0] not in text or NOTES[1] not in text:
        return list(NOTES)
    return text[text.index(NOTES[0]) : text.index(NOTES[1]) + len(NOTES[1])].splitlines()


def top_causes(name: str, out: Breakdown) -> list[str]:
    """The few lines printed: each metric's commonest causes."""
    def top(counts: Counter, n: int = 4) -> str:
        return ", ".join(f"{key} {count}" for key, count in counts.most_common(n))

    return [f"{name}: Match fails {out.match.total()}/{out.match_counted} ({top(out.match)})",
            f"  Match slot errors: {top(by(out.match_slots, 'kind', 'cause'))}",
            f"  JGA fails {out.jga_failed}/{out.jga_turns}; slot errors: {top(by(out.jga_slots, 'kind', 'cause'))}",
            f"  JGA slots: {top(by(out.jga_slots, 'slot'))}",
            f"  SuccF1 missed: {top(out.success_missed)}; added: {top(out.success_added)}",
            f"  truncation: {dict(out.truncated)}"]  # fmt: skip


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint whose dev predictions are generated (once, cached) and analysed; repeatable")
    parser.add_argument("--test-predictions", type=Path, action="append", default=[],
                        help="a saved test predictions file to analyse too; repeatable")
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/kvret"))
    parser.add_argument("--output", type=Path, default=Path("docs/incar_errors.md"))
    parser.add_argument("--max-new-tokens", type=int, default=80, help="the benchmark's In-Car generation limit")
    args = parser.parse_args(argv)
    if not args.checkpoint and not args.test_predictions:
        parser.error("nothing to analyse: give --checkpoint and/or --test-predictions")
    return args


def run_name(path: Path) -> str:
    """"runs/x/incar/sft/best" -> "sft": the run a checkpoint or predictions file belongs to."""
    return path.parent.name if path.name in ("best", "last") or path.is_file() else path.name


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    dev = load_dialogues("incar", args.data_dir, "dev")
    sources = []
    for checkpoint in args.checkpoint:
        cache = args.output.with_suffix(f".{run_name(checkpoint)}.dev.json")
        predictions, truncated = generate_dev(checkpoint, dev, args.data_dir, cache, args.max_new_tokens)
        sources.append(Source(run_name(checkpoint), "dev", f"checkpoint `{checkpoint}`", predictions, truncated))
    for path in args.test_predictions:
        sources.append(Source(run_name(path), "test", f"predictions `{path}`", load_predictions(path), None))
    outs = []
    for source in sources:
        outs.append(analyse(source.predictions, source.split, args.data_dir, source.truncated))
        print("\n".join(top_causes(f"{source.name}, {source.split}", outs[-1])))
    command = "python scripts/incar_errors.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = ["# In-Car: where the remaining failures come from", "", f"    OMP_NUM_THREADS=1 {command}", "",
             "Written by `scripts/incar_errors.py` (its docstring defines every category). Match and SuccF1 are "
             "LABES's `metric.py` (the published definition, `todrl.evaluate.incar_published`), JGA is todrl's exact "
             "per-turn JGA; the counts of each section give the evaluator's own figures back (the script checks it).",
             "", *summary(sources, outs), "", *kept_notes(args.output), ""]  # fmt: skip
    for source, out in zip(sources, outs):
        lines += section(source, out)
    args.output.write_text("\n".join(lines).rstrip("\n") + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
