"""UBAR's text and value cleaning, which decides what the legacy evaluator's strings look like.

UBAR (and PPTOD, DAMD, MTTOD after it) passes every reference response, goal
value, belief-state value and database cell through one ``clean_text``
(lower-case, fixed typos, clock times, contractions and plurals rewritten by a
table of word pairs: "you 've" -> "you have", "restaurants" -> "restaurant
-s", "two" -> "2") and a per-slot value fixer, then splits multi-word values
into tokens.  Its evaluator compares the results with ``==``, so the legacy
evaluator must write them the same way to count the same venues and n-grams.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from todrl.data.normalize import DOMAINS

_CHARACTERS = (("\u2019", "'"), ("\u2018", "'"), (";", ","), ('"', " "), ("/", " and "), ("don't", "do n't"))

_CLOCK_RULES: tuple[tuple[str, str | None], ...] = (
    (r"(\d+) ([ap]\.?m)", r"\1\2"),  # "9 am" -> "9am"
    (r"((?<!\d)\d:\d+)(am)?", r"0\1"),  # "9:30am" -> "09:30"
    (r"((?<!\d)\d)am", r"0\1:00"),
    (r"((?<!\d)\d)pm", None),  # "5pm" -> "17:00"
    (r"(\d+)(:\d+)pm", None),  # "5:30pm" -> "17:30"
    (r"(\d+)a\.?m", r"\1"),
)
"""Applied in order; None marks the two afternoon rules, which add 12 hours."""

_TYPO_RULES = (
    (r"c\.b (\d), (\d) ([a-z])\.([a-z])", r"cb\1\2\3\4"), (r"c.b. 1 7 d.y", "cb17dy"), (r"c.b.1 7 d.y", "cb17dy"),
    (r"c.b 25, 9 a.q", "cb259aq"), (r"isc.b 25, 9 a.q", "is cb259aq"), (r"c.b2, 1 u.f", "cb21uf"),
    (r"c.b 1,2 q.a", "cb12qa"), (r"0-122-336-5664", "01223365664"), (r"postcodecb21rs", "postcode cb21rs"),
    (r"i\.d", "id"), (r" i d ", "id"), (r"depature", "departure"), (r"depearting", "departing"), (r"-type", " type"),
    (r"b[\s]?&[\s]?b", "bed and breakfast"), (r"b and b", "bed and breakfast"), (r"guesthouse[s]?", "guest house"),
    (r"swimmingpool[s]?", "swimming pool"), (r"wo n't", "will not"), (r" 'd ", " would "), (r" 'm ", " am "),
    (r" 're' ", " are "), (r" 'll' ", " will "), (r" 've ", " have "), (r"^'", ""), (r"'$", ""),
    (r"([a-zT]+)\.([a-z])", r"\1 . \2"), (r"(\w+)\.\.? ", r"\1 . "),
)  # fmt: skip
"""UBAR's regular-expression fixes, in its order (" 're' " and " 'll' " carry its stray quote, so they rarely fire)."""

WORD_PAIRS = (
    ("it 's", "it is"), ("don 't", "do not"), ("doesn 't", "does not"), ("didn 't", "did not"),
    ("you 'd", "you would"), ("you 're", "you are"), ("you 'll", "you will"), ("i 'm", "i am"),
    ("they 're", "they are"), ("that 's", "that is"), ("what 's", "what is"), ("couldn 't", "could not"),
    ("i 've", "i have"), ("we 've", "we have"), ("can 't", "cannot"), ("i 'd", "i would"),
    ("aren 't", "are not"), ("isn 't", "is not"), ("wasn 't", "was not"), ("weren 't", "were not"),
    ("won 't", "will not"), ("there 's", "there is"), ("there 're", "there are"), (". .", "."),
    ("restaurants", "restaurant -s"), ("hotels", "hotel -s"), ("laptops", "laptop -s"), ("cheaper", "cheap -er"),
    ("dinners", "dinner -s"), ("lunches", "lunch -s"), ("breakfasts", "breakfast -s"),
    ("expensively", "expensive -ly"), ("moderately", "moderate -ly"), ("cheaply", "cheap -ly"),
    ("prices", "price -s"), ("places", "place -s"), ("venues", "venue -s"), ("ranges", "range -s"),
    ("meals", "meal -s"), ("locations", "location -s"), ("areas", "area -s"), ("policies", "policy -s"),
    ("children", "child -s"), ("kids", "kid -s"), ("kidfriendly", "kid friendly"), ("cards", "card -s"),
    ("upmarket", "expensive"), ("inpricey", "cheap"), ("inches", "inch -s"), ("uses", "use -s"),
    ("dimensions", "dimension -s"), ("driverange", "drive range"), ("includes", "include -s"),
    ("computers", "computer -s"), ("machines", "machine -s"), ("families", "family -s"), ("ratings", "rating -s"),
    ("constraints", "constraint -s"), ("pricerange", "price range"), ("batteryrating", "battery rating"),
    ("requirements", "requirement -s"), ("drives", "drive -s"), ("specifications", "specification -s"),
    ("weightrange", "weight range"), ("harddrive", "hard drive"), ("batterylife", "battery life"),
    ("businesses", "business -s"), ("hours", "hour -s"), ("one", "1"), ("two", "2"), ("three", "3"),
    ("four", "4"), ("five", "5"), ("six", "6"), ("seven", "7"), ("eight", "8"), ("nine", "9"), ("ten", "10"),
    ("eleven", "11"), ("twelve", "12"), ("anywhere", "any where"), ("good bye", "goodbye"),
)  # fmt: skip
"""UBAR's ``mapping.pair``: whole-word rewrites applied one after another."""


def _afternoon(match: re.Match[str]) -> str:
    minutes = match.group(2) if match.re.groups == 2 else ":00"
    return f"{int(match.group(1)) + 12}{minutes}"


def _rule_group(rules: Sequence[tuple[str, Any]]) -> tuple[re.Pattern[str], tuple[tuple[re.Pattern[str], Any], ...]]:
    """Rules applied in order, with one pattern that finds whether any applies (most texts need none)."""
    compiled = tuple((re.compile(pattern), _afternoon if replacement is None else replacement) for pattern, replacement in rules)
    return re.compile("|".join(f"(?:{pattern})" for pattern, _ in rules)), compiled


_RULE_GROUPS = (_rule_group(_CLOCK_RULES), _rule_group(_TYPO_RULES))


@lru_cache(maxsize=200_000)
def clean_text(text: str) -> str:
    """UBAR's ``clean_text``: what every reference response and value goes through."""
    text = text.strip().lower()
    for old, new in _CHARACTERS:
        text = text.replace(old, new)
    for any_rule, rules in _RULE_GROUPS:
        if any_rule.search(text):  # no rule matching means no rule can change the text
            for pattern, replacement in rules:
                text = pattern.sub(replacement, text)
    for old, new in WORD_PAIRS:
        if old in text:
            # str.replace on a space-padded text: like UBAR, "one one" becomes "1 one" (matches cannot overlap)
            text = f" {text} ".replace(f" {old} ", f" {new} ")[1:-1]
    return text


# ----------------------------------------------------------------------------------------------- slot values

_VALUE_FIXES: dict[tuple[str, str], dict[str, str]] = {
    ("attraction", "name"): {"t": "", "trinity": "trinity college"},
    ("attraction", "area"): {"town centre": "centre", "cent": "centre", "center": "centre", "ce": "centre", "ely": "",
                             "in town": "", "museum": "", "norwich": "", "same area as hotel": "", "we": "west"},
    ("attraction", "type"): {
        "m": "museum", "mus": "museum", "musuem": "museum", "art": "architecture", "architectural": "architecture",
        "churches": "church", "coll": "college", "concert": "concert hall", "concerthall": "concert hall",
        "night club": "nightclub", "mutiple sports": "multiple sports", "mutliple sports": "multiple sports",
        "sports": "multiple sports", "galleria": "multiple sports", "ol": "", "science": "", "gastropub": "",
        "la raza": "", "swimmingpool": "swimming pool", "pool": "swimming pool", "fun": "entertainment",
    },
    ("hotel", "area"): {"cen": "centre", "centre of town": "centre", "near city center": "centre", "center": "centre",
                        "east area": "east", "east side": "east", "in the north": "north",
                        "north part of town": "north", "we": "west"},
    ("hotel", "day"): {"monda": "monday", "t": "tuesday"},
    ("hotel", "name"): {"uni": "university arms hotel", "university arms": "university arms hotel",
                        "acron": "acorn guest house", "ashley": "ashley hotel",
                        "arbury lodge guesthouse": "arbury lodge guest house", "la": "la margherit", "no": ""},
    ("hotel", "internet"): {"does not": "no", "y": "yes", "free": "yes", "free internet": "yes", "4": ""},
    ("hotel", "parking"): {"n": "no", "free parking": "yes", "y": "yes"},
    ("hotel", "pricerange"): {"moderately": "moderate", "any": "do n't care", "inexpensive": "cheap", "2": "", "4": ""},
    ("hotel", "stars"): {"two": "2", "three": "3", "4-star": "4", "4 stars": "4", "4 star": "4", "four star": "4",
                         "four stars": "4"},
    ("hotel", "type"): {"0 star rarting": "", "guesthouse": "guest house"},
    ("restaurant", "area"): {"center": "centre", "scentre": "centre", "center of town": "centre",
                             "city center": "centre", "cb30aq": "centre", "town center": "centre",
                             "centre of cambridge": "centre", "city centre": "centre", "west part of town": "west",
                             "n": "north", "the south": "south"},
    ("restaurant", "day"): {"monda": "monday", "t": "tuesday"},
    ("restaurant", "pricerange"): {"moderately": "moderate", "mode": "moderate", "mo": "moderate", "not": "",
                                   "inexpensive": "cheap", "ch": "cheap"},
    ("restaurant", "food"): {"barbecue": "barbeque"},
    ("restaurant", "time"): {"9:00": "09:00", "9:45": "09:45", "1330": "13:30", "1430": "14:30", "9:15": "09:15",
                             "9:30": "09:30", "1830": "18:30", "9": "09:00", "2:00": "14:00", "1:00": "13:00",
                             "3:00": "15:00"},
    ("train", "day"): {"doesnt care": "do n't care", "doesn't care": "do n't care"},
}  # fmt: skip
"""UBAR's per-slot value fixes.  Its train and taxi time fixes are left out: they test the slot names
``arriveBy``/``leaveAt``, which never occur there because the corpus is lower-cased before cleaning."""

_ALLOWED_VALUES = {
    ("hotel", "type"): frozenset({"hotel", "guest house", "do n't care"}),
    ("restaurant", "area"): frozenset({"centre", "south", "do n't care", "west", "east", "north"}),
}
"""Slots whose other values UBAR empties."""

_DONTCARE = frozenset({"dont care", "don't care", "do nt care", "doesn't care"})

_OPENING = "\"'([{<:$\u00a3"
_CLOSING = "\"',;:!?)]}>"
_CLITICS = ("n't", "'s", "'m", "'re", "'ve", "'ll", "'d")
_INFIX = re.compile(r"(?<=[a-z0-9])-(?=[a-z])|(?<=[0-9])-(?=[0-9-])|(?<=[a-z]),(?=[a-z])|(?<=[a-z0-9])[:<>=/](?=[a-z])")


def _split_token(token: str) -> list[str]:
    """One whitespace token as spaCy's English tokenizer splits it, for the characters values hold."""
    prefix: list[str] = []
    while len(token) > 1 and token[0] in _OPENING and token not in _CLITICS:
        prefix.append(token[0])
        token = token[1:]
    suffix: list[str] = []
    while len(token) > 1:
        clitic = next((c for c in _CLITICS if token.endswith(c) and len(token) > len(c)), None)
        if clitic is not None:
            suffix.insert(0, clitic)
            token = token[: -len(clitic)]
        elif token[-1] in _CLOSING or (token[-1] == "." and token[-2].isalnum()):
            suffix.insert(0, token[-1])
            token = token[:-1]
        else:
            break
    return prefix + _INFIX.sub(lambda m: f" {m.group(0)} ", token).split() + suffix


@lru_cache(maxsize=200_000)
def tokenize(value: str) -> str:
    """A value split into tokens as UBAR's spaCy tokenizer does ("queens' college" -> "queens ' college")."""
    return " ".join(piece for token in value.split() for piece in _split_token(token))


@lru_cache(maxsize=200_000)
def clean_value(domain: str, slot: str, value: str, always_tokenize: bool = False) -> str:
    """UBAR's ``clean_slot_values`` then, for multi-word values (or every database cell), its tokenization.

    ``slot`` is UBAR's name (``leave``, ``arrive``, ``pricerange``, ``id``); "" means "no value".
    """
    value = clean_text(value)
    if value == "not mentioned":
        return ""
    if value:
        value = _VALUE_FIXES.get((domain, slot), {}).get(value, value)
        allowed = _ALLOWED_VALUES.get((domain, slot))
        if allowed is not None and value not in allowed:
            value = ""
    if value in _DONTCARE:
        value = "do n't care"
    return tokenize(value) if always_tokenize or len(value.split()) > 1 else value


# ----------------------------------------------------------------------------------------------- responses

_PLACEHOLDER = re.compile(r"\[([^\[\]]+)\]")
_DOMAIN_PREFIX = re.compile(rf"^(?:{'|'.join(DOMAINS)})_")
_PLACEHOLDER_NAMES = {
    "arriveby": "arrive", "leaveat": "leave", "trainid": "id", "duration": "time", "entrancefee": "price",
    "ref": "reference", "addr": "address", "post": "postcode", "count": "choice", "bookday": "day",
    "bookpeople": "people", "bookstay": "stay", "booktime": "time",
}  # fmt: skip
"""Other systems' placeholder names -> UBAR's ``[value_<slot>]`` (a taxi's type is its ``car``)."""


def _ubar_placeholder(match: re.Match[str]) -> str:
    name = match.group(1).lower().replace(" ", "")
    if name in DOMAINS:
        return f"[{name}]"
    if name == "taxi_type":
        return "[value_car]"
    name = _DOMAIN_PREFIX.sub("", name.removeprefix("value_"))
    return f"[value_{_PLACEHOLDER_NAMES.get(name, name)}]"


def ubar_placeholders(response: str) -> str:
    """A response with UBAR's placeholders: ``[restaurant_name]``, ``[name]`` -> ``[value_name]``, lower-cased."""
    return _PLACEHOLDER.sub(_ubar_placeholder, response.lower())
