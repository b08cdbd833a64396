"""The end-to-end target text: write it, and read it back from any generation.

Grammar (UBAR/MTTOD style, lower-cased, single spaces)::

    <sos_b> [restaurant] food modern british area centre <eos_b>
    <sos_a> [restaurant] [inform] phone name [general] [reqmore] <eos_a>
    <sos_r> their phone is [value_phone] . <eos_r>

In-Car targets have no act span. The belief state has no delimiter between a
value and the next slot, so reading it needs the slot names: a word that names
a slot of the current domain starts a new pair, unless the current slot has no
value yet (then it is the value's first word) or it names the slot being
filled ("department emergency department", "room conference room 100"). Known
domains use their own slots, so "[navigate] poi_type parking garage" is not
cut at "parking". A value holding the name of another slot of its domain
("agenda be on time") cannot be told apart from a new pair and is cut there.

In the act span a bracket naming a domain of the vocabulary opens that
domain and one naming a known act is an act, even before any domain (it is
then filed under `NO_DOMAIN`); an unknown bracket opens a domain when none is
open and is an act otherwise. Each corpus reader supplies its vocabulary
(``todrl.data.span_vocabulary``): SGD's services and slots are not in the
default one, which knows MultiWOZ and In-Car.

Reading never raises: a model's output may be cut anywhere or garbled, and
whatever was well formed is kept. The same incremental reader serves whole
texts here and per-token rewards in :mod:`rewards.progress`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from rewards.lexer import BRACKET, MARKER, MARKERS, SPACE, Lexer

SOS_B, EOS_B, SOS_A, EOS_A, SOS_R, EOS_R = MARKERS
SPAN_TOKENS: tuple[str, ...] = MARKERS

MULTIWOZ_SLOTS: dict[str, tuple[str, ...]] = {
    "restaurant": ("food", "pricerange", "area", "name", "time", "day", "people"),
    "hotel": ("name", "type", "parking", "pricerange", "internet", "stars", "area", "day", "people", "stay"),
    "attraction": ("name", "type", "area"),
    "train": ("leave", "arrive", "destination", "departure", "day", "people"),
    "taxi": ("leave", "arrive", "destination", "departure"),
    "hospital": ("department",),
    "police": (),
    "bus": ("leave", "arrive", "destination", "departure", "day"),
}
"""Informable (belief-state) slots per MultiWOZ domain."""

INCAR_SLOTS: dict[str, tuple[str, ...]] = {
    "schedule": ("event", "time", "date", "party", "room", "agenda"),
    "weather": ("location", "weather_attribute", "date"),
    "navigate": ("poi_type", "distance"),
}
"""Informable slots per In-Car (KVRET) domain: LABES's 11, the ones Match compares and the reader keeps."""

DEFAULT_SLOTS: dict[str, tuple[str, ...]] = {**MULTIWOZ_SLOTS, **INCAR_SLOTS}

GENERAL_DOMAINS: frozenset[str] = frozenset({"general", "booking"})
"""Act-span domains that hold no belief state."""

MULTIWOZ_ACTS: frozenset[str] = frozenset({
    "inform", "request", "recommend", "select", "nooffer", "nobook", "book", "offerbook", "offerbooked",
    "bye", "greet", "reqmore", "welcome", "thank",
})
SGD_ACTS: frozenset[str] = frozenset({
    "inform", "request", "confirm", "offer", "notify_success", "notify_failure", "inform_count", "offer_intent",
    "req_more", "goodbye",
})
DEFAULT_ACTS: frozenset[str] = MULTIWOZ_ACTS | SGD_ACTS

Slots = Mapping[str, Iterable[str]]
BeliefState = dict[str, dict[str, str]]
DialogueAct = dict[str, dict[str, list[str]]]

NO_DOMAIN = ""
"""Domain key of acts written before any domain bracket ("[inform] phone [general] [reqmore]")."""

_PLACEHOLDER = re.compile(r"\[value_([^\s\[\]]+)\]")


@dataclass
class Target:
    """The three parts of a generation; each is empty when its span is absent."""

    belief_state: BeliefState = field(default_factory=dict)
    dialogue_act: DialogueAct = field(default_factory=dict)
    response: str = ""


class Vocabulary:
    """What reading a target needs to know of its corpus: the slots of each domain, its domains and its acts.

    Each corpus reader supplies its own (``todrl.data.span_vocabulary``); the
    default knows MultiWOZ and In-Car. A domain it does not list reads its
    belief pairs with the union of the slots it knows.
    """

    def __init__(self, slots: Slots | None = None, acts: Iterable[str] | None = None,
                 domains: Iterable[str] = ()) -> None:
        source = DEFAULT_SLOTS if slots is None else slots
        self.slots = {domain: frozenset(names) for domain, names in source.items()}
        self._union = frozenset().union(*self.slots.values())
        self.domains = frozenset(self.slots) | GENERAL_DOMAINS | frozenset(domains)
        """Brackets that open a domain in the act span."""
        self.acts = DEFAULT_ACTS if acts is None else frozenset(acts)
        """Brackets that name an act, even where no domain bracket came first."""

    def __call__(self, domain: str) -> frozenset[str]:
        return self.slots.get(domain, self._union)

    @classmethod
    def of(cls, vocabulary: Vocabulary | Slots | None) -> Vocabulary:
        """A vocabulary from a vocabulary, a domain -> slots mapping, or None (the default)."""
        return vocabulary if isinstance(vocabulary, Vocabulary) else cls(vocabulary)


DEFAULT_VOCABULARY = Vocabulary()


class SpanParser:
    """Reads a target incrementally: `feed` text pieces, `close` at the end.

    Subclasses watch the reading through the ``_on_*`` methods, which fire the
    moment an item is final: a belief pair once the next slot, domain or marker
    closes it; an act slot once a space or bracket ends the word; a placeholder
    at its "]"; a span at its end marker.
    """

    def __init__(self, vocabulary: Vocabulary | Slots | None = None) -> None:
        self.vocabulary = Vocabulary.of(vocabulary)
        self.belief_state: BeliefState = {}
        self.dialogue_act: DialogueAct = {}
        self._response: list[str] = []
        self._span: str | None = None
        self._domain: str | None = None
        self._act: str | None = None
        self._slot: str | None = None
        self._value: list[str] = []
        self._lexer = Lexer(self._unit)

    def feed(self, piece: str) -> None:
        self._lexer.feed(piece)

    def close(self) -> Target:
        """End of text: close what is still open and return the parsed target."""
        self._lexer.finish()
        self._close_pair()
        return Target(self.belief_state, self.dialogue_act, self.response)

    @property
    def response(self) -> str:
        return "".join(self._response).strip()

    # Hooks: subclasses extend these to follow the reading.

    def _on_pair(self, domain: str, slot: str, value: str) -> None:
        self.belief_state.setdefault(domain, {})[slot] = value

    def _on_act_slot(self, domain: str, act: str, slot: str) -> None:
        self.dialogue_act[domain][act].append(slot)

    def _on_placeholder(self, slot: str) -> None:
        """A [value_slot] in the response; the text itself is kept by the reader."""

    def _on_span_start(self, span: str) -> None:
        """span is "b", "a" or "r"."""

    def _on_span_end(self, span: str) -> None:
        """span is "b", "a" or "r"."""

    # Grammar.

    def _unit(self, kind: str, text: str) -> None:
        if kind == MARKER:
            self._marker(text)
        elif self._span == "r":
            self._response.append(text)
            if kind == BRACKET and (match := _PLACEHOLDER.fullmatch(text)):
                self._on_placeholder(match.group(1))
        elif kind == SPACE:
            return
        elif self._span == "b":
            self._belief_unit(kind, text)
        elif self._span == "a":
            self._act_unit(kind, text)

    def _marker(self, marker: str) -> None:
        self._close_pair()
        self._domain = self._act = None
        opening = marker.startswith("<sos")
        span = marker[-2]
        self._span = span if opening else None
        if opening:
            self._on_span_start(span)
        else:
            self._on_span_end(span)

    def _belief_unit(self, kind: str, text: str) -> None:
        if kind == BRACKET:
            self._close_pair()
            self._domain = text[1:-1]
        elif self._domain is None:
            return
        elif text in self.vocabulary(self._domain) and (self._slot is None or (self._value and text != self._slot)):
            self._close_pair()
            self._slot = text
        elif self._slot is not None:
            self._value.append(text)

    def _close_pair(self) -> None:
        if self._slot is not None and self._value:
            self._on_pair(self._domain, self._slot, " ".join(self._value))
        self._slot = None
        self._value = []

    def _act_unit(self, kind: str, text: str) -> None:
        if kind == BRACKET:
            name = text[1:-1]
            vocabulary = self.vocabulary
            if name in vocabulary.domains or (self._domain is None and name not in vocabulary.acts):
                self._domain, self._act = name, None
            else:
                if self._domain is None:
                    self._domain = NO_DOMAIN
                self._act = name
                self.dialogue_act.setdefault(self._domain, {}).setdefault(name, [])
        elif self._act is not None:
            self._on_act_slot(self._domain, self._act, text)


def parse_target(text: str, vocabulary: Vocabulary | Slots | None = None) -> Target:
    """Belief state, dialogue act and response of any string; never raises.

    `vocabulary` (a `Vocabulary`, or domain -> slot names) reads the targets of
    other corpora; by default MultiWOZ's and In-Car's.
    """
    parser = SpanParser(vocabulary)
    parser.feed(text)
    return parser.close()


def parse_belief_state(text: str, vocabulary: Vocabulary | Slots | None = None) -> BeliefState:
    """``[domain] slot value ...`` (markers optional) -> {domain: {slot: value}}."""
    return parse_target(text if SOS_B in text else f"{SOS_B} {text}", vocabulary).belief_state


def parse_dialogue_act(text: str, vocabulary: Vocabulary | Slots | None = None) -> DialogueAct:
    """``[domain] [act] slot ...`` (markers optional) -> {domain: {act: [slots]}}; acts before any domain
    bracket go under `NO_DOMAIN`."""
    return parse_target(text if SOS_A in text else f"{SOS_A} {text}", vocabulary).dialogue_act


def response_slots(text: str) -> set[str]:
    """Slots named by ``[value_x]`` placeholders."""
    return set(_PLACEHOLDER.findall(text))


def format_belief_state(belief_state: Mapping[str, Mapping[str, str]]) -> str:
    """Inverse of parse_belief_state; domains without a valued slot are left out."""
    parts: list[str] = []
    for domain, pairs in belief_state.items():
        written = [f"{slot} {' '.join(value.split())}" for slot, value in pairs.items() if value.strip()]
        if written:
            parts.append(" ".join([f"[{domain}]", *written]))
    return " ".join(parts)


def format_dialogue_act(dialogue_act: Mapping[str, Mapping[str, Iterable[str]]]) -> str:
    """Inverse of parse_dialogue_act; domains without acts are left out."""
    parts: list[str] = []
    for domain, acts in dialogue_act.items():
        if not acts:
            continue
        if domain != NO_DOMAIN:
            parts.append(f"[{domain}]")
        parts.extend(" ".join([f"[{act}]", *slots]) for act, slots in acts.items())
    return " ".join(parts)


def build_target(
    belief_state: Mapping[str, Mapping[str, str]],
    dialogue_act: Mapping[str, Mapping[str, Iterable[str]]],
    response: str,
    with_act: bool = True,
) -> str:
    """The decoder target; ``with_act=False`` for corpora without acts (In-Car)."""
    spans = [(SOS_B, format_belief_state(belief_state), EOS_B)]
    if with_act:
        spans.append((SOS_A, format_dialogue_act(dialogue_act), EOS_A))
    spans.append((SOS_R, " ".join(response.split()), EOS_R))
    return " ".join(part for span in spans for part in span if part)
