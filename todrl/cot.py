"""Step-by-step distillation for state tracking (seed 003, Sec. 3.3): `--task dst-cot`, two examples per turn.

    stage 1: "<prefix 1> : u_{t-1} : bs_{t-1} : sr_{t-1} : u_t"            -> "<sos_f> [intention] BS' <eos_f> rationale"
    stage 2: "<prefix 2> : u_{t-1} : bs_{t-1} : sr_{t-1} : u_t : stage 1"  -> "<sos_b> BS <eos_b>"

(BS' the slot-values the user turn introduces, in the grammar of BS: "[domain] slot value ...")

Both stages train in one mixture; inference decodes stage 1 for every turn, then stage 2 on its output, and the
states read from stage 2 are scored like `--task dst`'s. The formal representation is the belief-state grammar of
`rewards.spans` behind an intention bracket, between `<sos_f>` and `<eos_f>`: the rewards' lexer does not know these
two, so a stage-1 text reads as an empty target there and nothing that parses spans changes.

Where the representation comes from:

* a synthetic corpus (`todrl.synth`): its logic flow, recorded per turn (`Dialogue.intents`);
* a real corpus (MultiWOZ, In-Car, SGD), derived from the gold labels (`derive_intent`): the slot-values are those
  of the turn's state that are new or changed since the previous turn's (the empty state before the first); the
  intention is `update` if a value of the previous state changed or went away, else `book` if a new slot is
  `people` or `stay` (slots only a booking fills), else `inform` if any slot is new, else `request` if the user
  asked for slots (the only user act every reader keeps), else `bye` on the last turn, else `chat`; the rationale
  names, per domain, the slots given, changed, dropped and asked for ("the user gives hotel area, pricerange;
  asks for hotel phone"), or says the state does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rewards.spans import EOS_B, SOS_B, Vocabulary, format_belief_state, parse_belief_state

from todrl.data.records import BeliefState, Dialogue, Turn, UserIntent
from todrl.format import Example, turn_source

SOS_F, EOS_F = "<sos_f>", "<eos_f>"
FORMAL_TASK, STATE_TASK = "dst-cot", "dst-cot-state"
"""`todrl.format.PREFIXES` keys of the two stages' inputs."""
BOOKING_SLOTS = frozenset({"people", "stay"})

Generate = Callable[[Sequence[str]], list[str]]


SlotNames = dict[str, list[str]]
"""domain -> slot names."""


def derive_intent(previous: BeliefState, turn: Turn, last: bool) -> UserIntent:
    """A real corpus's turn as a flow step, from its gold state change and requested slots (the module's rule)."""
    introduced = {domain: {slot: value for slot, value in pairs.items() if previous.get(domain, {}).get(slot) != value}
                  for domain, pairs in turn.belief_state.items()}
    introduced = {domain: pairs for domain, pairs in introduced.items() if pairs}
    new = _slots(introduced, lambda domain, slot: slot not in previous.get(domain, {}))
    changed = _slots(introduced, lambda domain, slot: slot in previous.get(domain, {}))
    dropped = _slots(previous, lambda domain, slot: slot not in turn.belief_state.get(domain, {}))
    asked = {domain: slots for domain, slots in turn.requested_slots.items() if slots}
    clauses = [_clause(verb, slots) for verb, slots in (("gives", new), ("changes", changed), ("drops", dropped),
                                                        ("asks for", asked)) if slots]
    rationale = "the user " + "; ".join(clauses) if clauses else "the state does not change"
    return UserIntent(_intention(new, bool(changed or dropped), bool(asked), last), introduced, rationale)


def _slots(state: BeliefState, keep: Callable[[str, str], bool]) -> SlotNames:
    """The slots of `state` that `keep(domain, slot)` accepts, per domain (none left: the domain is left out)."""
    kept = {domain: [slot for slot in pairs if keep(domain, slot)] for domain, pairs in state.items()}
    return {domain: slots for domain, slots in kept.items() if slots}


def _intention(new: SlotNames, revised: bool, asked: bool, last: bool) -> str:
    """The first that holds: update, book, inform, request, bye (last turn), chat."""
    if revised:
        return "update"
    if any(BOOKING_SLOTS.intersection(slots) for slots in new.values()):
        return "book"
    if new:
        return "inform"
    if asked:
        return "request"
    return "bye" if last else "chat"


def _clause(verb: str, slots: SlotNames) -> str:
    return f"{verb} " + "; ".join(f"{domain} {', '.join(names)}" for domain, names in slots.items())


def dialogue_intents(dialogue: Dialogue) -> list[UserIntent]:
    """One per turn: the corpus's logic flow where it has one, else derived from the gold labels."""
    if dialogue.intents:
        return dialogue.intents
    states = [{}, *(turn.belief_state for turn in dialogue.turns)]
    last = len(dialogue.turns) - 1
    return [derive_intent(states[i], turn, i == last) for i, turn in enumerate(dialogue.turns)]


def formal_text(intent: UserIntent) -> str:
    """Stage 1's target: the representation, then the rationale."""
    body = format_belief_state(intent.slot_values)
    return " ".join(filter(None, [SOS_F, f"[{intent.intention}]", body, EOS_F, " ".join(intent.rationale.split())]))


def read_formal(text: str, vocabulary: Vocabulary | None = None) -> UserIntent:
    """A stage-1 text back as a record (what a recall check reads); never raises."""
    head, _, rationale = text.partition(EOS_F)
    words = head.replace(SOS_F, " ").split()
    intention = words[0][1:-1] if words and words[0].startswith("[") and words[0].endswith("]") else ""
    body = " ".join(words[1:] if intention else words)
    return UserIntent(intention, parse_belief_state(body, vocabulary), rationale.strip())


def formal_source(dialogue: Dialogue, index: int) -> str:
    """Stage 1's input: the previous turn's words, state and delexicalized reply, then the user's."""
    return turn_source(dialogue.turns[index].user, dialogue.turns[index - 1] if index else None, False, FORMAL_TASK)


def state_source(dialogue: Dialogue, index: int, formal: str) -> str:
    """Stage 2's input: stage 1's context, then its output (last, so cutting from the left keeps it)."""
    context = turn_source(dialogue.turns[index].user, dialogue.turns[index - 1] if index else None, False, STATE_TASK)
    return f"{context} : {formal}"


def cot_examples(dialogues: Sequence[Dialogue]) -> list[Example]:
    """Both stages' examples of every turn, stage 1 first; stage 2 is conditioned on the gold stage-1 text."""
    examples = []
    for dialogue in dialogues:
        for index, (turn, intent) in enumerate(zip(dialogue.turns, dialogue_intents(dialogue), strict=True)):
            formal = formal_text(intent)
            state = " ".join(filter(None, [SOS_B, format_belief_state(turn.belief_state), EOS_B]))
            examples += [
                Example(dialogue.id, index, formal_source(dialogue, index), formal, turn.belief_state,
                        turn.requested_slots, subtask="formal"),
                Example(dialogue.id, index, state_source(dialogue, index, formal), state, turn.belief_state,
                        turn.requested_slots, subtask="state"),
            ]
    return examples


def chain_states(generate: Generate, dialogues: Sequence[Dialogue]) -> list[str]:
    """Per turn, in `build_examples` order, stage 2's text conditioned on stage 1's generated one.

    Every turn's stage 1 is decoded before any stage 2, so batches stay full.
    """
    turns = [(d, i) for d in dialogues for i in range(len(d.turns))]
    formal = generate([formal_source(d, i) for d, i in turns])
    return generate([state_source(d, i, text) for (d, i), text in zip(turns, formal)])
