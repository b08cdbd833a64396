"""In-Car text the way LABES and GALAXY write it: the text steps their scores depend on.

LABES (thu-spmi/LABES, ``datasets.py``) lower-cases KVRET, tokenizes it with
NLTK's ``word_tokenize`` and lemmatizes every token as a noun with NLTK's
WordNet lemmatizer; GALAXY (siat-nlp/GALAXY) reads LABES's text back through
BERT's tokenizer.  Each function here reproduces one of those steps:

- `tokenize`: the rules of NLTK 3.4's ``word_tokenize`` (Treebank's, with
  NLTK's quote and period fixes) on the sentences NLTK's Punkt model cuts.
  Punkt's trained English parameters are not installable offline; on
  lower-cased text its decision comes down to "a token ending in a period ends
  the sentence unless it is one of the model's abbreviations, or a number or
  an initial followed by a lower-case word", which is what `sentences` does.
  The model's collocations and its case statistics of words change nothing in
  KVRET's test references; without any sentence cuts 61 of the 808 would
  differ.
- `lemmatize`: WordNet 3.0's morphy for nouns as NLTK 3.4 runs it (LABES pins
  NLTK 3.4.5: rules re-applied until a form is known, the shortest form kept),
  on the WordNet noun index and exception list that spaCy's lookup tables ship.
- `bert_text`: what GALAXY's BERT tokenize-then-decode round trip leaves of a
  text: punctuation split off, then its ``clean_string`` re-attaches clitics.
"""

from __future__ import annotations

import gzip
import json
import re
import unicodedata
from functools import cache
from typing import Any

_ABBREVIATIONS = frozenset(
    "a.a a.c a.d a.g a.h a.m a.m.e a.s a.t adm ala aug ariz ave b.f b.v bros c c.i.t c.o.m.b c.v calif chg cie co col "
    "colo conn corp cos ct d d.c d.h d.w dec dr e e.f e.h e.l e.m f f.g f.j fla feb fri ft g g.d g.f g.k ga gen h h.c "
    "h.f h.m i.m.s ill inc j.b j.c j.j j.k j.p j.r jan jr k kan ky l l.a l.f l.p lt ltd m m.b.a m.d.c m.j maj messrs "
    "mg mich minn mr mrs ms n n.c n.d n.h n.j n.m n.v n.y nev nov oct ok okla ore p p.a.m p.m pa ph.d prof r r.a r.h "
    "r.i r.j r.k r.t rep reps s s.a s.a.y s.c s.g s.p.a s.s sen sep sept sr st sw t t.j tenn tues u.k u.n u.s u.s.a "
    "u.s.s.r v va vs vt w w.c w.r w.va w.w wash wed wis yr".split()
)
"""The abbreviations of NLTK's English Punkt model."""
_NUMBER = re.compile(r"^-?[.,]?\d[\d,.-]*\.?$")
_INITIAL = re.compile(r"^[^\W\d]\.$")
_LEADING_PUNCTUATION = re.compile(r"^[\"`({\[:;&#*@)}\]\-,]+")
_NON_WORD = re.compile(r"[)\";}\]*:@'({\[!?]")
"""Characters that end a Punkt word token: "don't." is read as "don", "'", "t."."""

_NOUN_RULES = (("s", ""), ("ses", "s"), ("ves", "f"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"),
               ("men", "man"), ("ies", "y"))  # fmt: skip
"""WordNet's morphy suffix rules for nouns, in NLTK's order (ties between equally short forms go to the first)."""

_NOT_WORDNET_NOUNS = frozenset(
    "abed adrenoceptor baser bashing beaming boutant emption gatherum gentle heeler korsakov lettres makers meithei "
    "mindedness phenolsulfonephthalein pointing rater searching semitism softly splitting stadt swallower tawhid "
    "through tsai up upmanship wittedness".split()
)
"""Pieces of hyphenated lemmas ("ups-and-downs", "run-through") that spaCy's noun index lists as words of their own."""

_CLEAN_STRING = ((" - ", "-"), (" ' ", "'"), (" n't", "n't"), (" 'm", "'m"), (" do not", " don't"), (" 's", "'s"),
                 (" 've", "'ve"), (" 're", "'re"))  # fmt: skip
"""GALAXY's ``clean_string`` after decoding BERT tokens, applied in this order."""
_PLACEHOLDER = re.compile(r"\[value_\w+\]")
_MERIDIEM = re.compile(r"(\d+) ([ap]m)")
_CLOCK = re.compile(r"(?<![\w:])([01]\d|2[0-3]):([0-5]\d)(?![\w:])")
"""todrl's hh:mm (`todrl.data.normalize`); KVRET writes "4:50" or "5pm", never a two-digit "04:50"."""


def sentences(text: str) -> list[str]:
    """Cut lower-cased text where Punkt's English model would."""
    words = list(re.finditer(r"\S+", text))
    cuts, start = [], 0
    for word, following in zip(words, words[1:]):
        if _ends_sentence(word.group(), following.group()):
            cuts.append(text[start : word.end()].strip())
            start = following.start()
    return [*cuts, text[start:].strip()] if words else []


def _ends_sentence(word: str, following: str) -> bool:
    if not word.endswith(".") or word.endswith(".."):
        return False
    token = _LEADING_PUNCTUATION.sub("", _NON_WORD.split(word)[-1])  # Punkt's last token of the word
    stem = token[:-1]
    if stem in _ABBREVIATIONS or stem.split("-")[-1] in _ABBREVIATIONS:  # "ok.", "st.", "p.m.", the "t." of "don't."
        return False
    if _NUMBER.match(token) or _INITIAL.match(token):
        return not (following[0].islower() or following in ";:,.!?")
    return True


_Rule = tuple[re.Pattern[str], str, tuple[str, ...]]


def _rules(*rules: tuple[str, str, str]) -> tuple[_Rule, ...]:
    """(pattern, replacement, characters one of which the text must hold for the pattern to match)."""
    return tuple((re.compile(pattern), replacement, tuple(needs)) for pattern, replacement, needs in rules)


_TREEBANK = _rules(
    # opening quotes
    (r"([«“‘„]|[`]+)", r" \1 ", "«“‘„`"), (r'^"', "``", '"'), (r"(``)", r" \1 ", "`"),
    (r"([ (\[{<])(\"|'{2})", r"\1 `` ", "\"'"), (r"(?i)(')(?!re|ve|ll|m|t|s|d)(\w)\b", r"\1 \2", "'"),
    # punctuation; a period only at the end of the sentence
    (r"([^.])(\.)([\])}>\"'»”’ ]*)\s*$", r"\1 \2 \3 ", "."), (r"([:,])([^\d])", r" \1 \2", ":,"),
    (r"([:,])$", r" \1 ", ":,"), (r"\.\.\.", " ... ", "."), (r"[;@#$%&]", r" \g<0> ", ";@#$%&"),
    (r"([^.])(\.)([\])}>\"']*)\s*$", r"\1 \2\3 ", "."), (r"[?!]", r" \g<0> ", "?!"), (r"([^'])' ", r"\1 ' ", "'"),
    # brackets, double dashes
    (r"[\]\[(){}<>]", r" \g<0> ", "[](){}<>"), (r"--", r" -- ", "-"),
    # closing quotes and clitics, on the text padded with spaces
    (r"^|$", " ", ""), (r"([»”’])", r" \1 ", "»”’"), (r'"', " '' ", '"'), (r"(\S)('')", r"\1 \2 ", "'"),
    (r"([^' ])('[sS]|'[mM]|'[dD]|') ", r"\1 \2 ", "'"), (r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) ", r"\1 \2 ", "'"),
    *((rf"(?i)\b({first})({second})\b", r" \1 \2 ", first[0] + first[0].upper()) for first, second in
      (("can", "not"), ("d", "'ye"), ("gim", "me"), ("gon", "na"), ("got", "ta"), ("lem", "me"), ("mor", "'n"))),
    (r"(?i)\b(wan)(na)\s", r" \1 \2 ", "nN"), (r"(?i) ('t)(is)\b", r" \1 \2 ", "'"),
    (r"(?i) ('t)(was)\b", r" \1 \2 ", "'"),
)  # fmt: skip
"""NLTK 3.4's ``word_tokenize`` on one sentence (Treebank rules with NLTK's quote and period fixes), in order."""


def tokenize(text: str) -> str:
    """NLTK 3.4's ``word_tokenize`` on lower-cased text, tokens joined by spaces."""
    tokens = []
    for sentence in sentences(text):
        for pattern, replacement, needs in _TREEBANK:
            if not needs or any(character in sentence for character in needs):
                sentence = pattern.sub(replacement, sentence)
        tokens += sentence.split()
    return " ".join(tokens)


@cache
def _wordnet_nouns() -> tuple[frozenset[str], dict[str, list[str]]]:
    """WordNet 3.0's noun lemmas and irregular plurals, from spaCy's lookup tables."""
    from spacy_lookups_data import get_file

    def table(name: str) -> Any:
        with get_file(f"en_lemma_{name}.json.gz").open("rb") as packed:
            return json.loads(gzip.decompress(packed.read()))["noun"]

    return frozenset(table("index")) - _NOT_WORDNET_NOUNS, table("exc")


@cache
def lemma(word: str) -> str:
    """NLTK 3.4's ``WordNetLemmatizer().lemmatize(word)``: "miles" -> "mile", and also "was" -> "wa", "has" -> "ha"."""
    nouns, exceptions = _wordnet_nouns()

    def known(forms: list[str]) -> list[str]:
        return list(dict.fromkeys(form for form in forms if form in nouns))

    def apply_rules(forms: list[str]) -> list[str]:
        return [form[: -len(old)] + new for form in forms for old, new in _NOUN_RULES if form.endswith(old)]

    if word in exceptions:
        found = known([word, *exceptions[word]])
    else:
        candidates = apply_rules([word])
        found = known([word, *candidates])
        while not found and candidates:
            candidates = apply_rules(candidates)
            found = known(candidates)
    return min(found, key=len) if found else word


def lemmatize(text: str) -> str:
    return " ".join(lemma(word) for word in text.split())


def labes_words(text: str) -> str:
    """LABES's ``_lemmatize(_tokenize(text))``."""
    return lemmatize(tokenize(text))


def join_meridiem(text: str) -> str:
    """"5 pm" -> "5pm", as LABES writes times."""
    return _MERIDIEM.sub(r"\1\2", text)


def twelve_hour(text: str) -> str:
    """todrl's clock times back in KVRET's commonest spelling: "17:00" -> "5pm", "09:30" -> "9:30am"."""

    def spell(match: re.Match[str]) -> str:
        hour, minutes = int(match.group(1)), match.group(2)
        suffix = "am" if hour < 12 else "pm"
        hour = hour % 12 or 12
        return f"{hour}{suffix}" if minutes == "00" else f"{hour}:{minutes}{suffix}"

    return _CLOCK.sub(spell, text)


def clean_replace(text: str, value: str, placeholder: str) -> str:
    """LABES's ``utils.clean_replace``: replace ``value`` where it starts a word, through the end of that word.

    It stops at the first occurrence that does not start a word, even when later ones do:
    >>> clean_replace("<go_r> the nearest rest stop <eos_r>", "rest", "[value_poi_type]")
    '<go_r> the nearest rest stop <eos_r>'
    >>> clean_replace("<go_r> a rest stop and a restaurant <eos_r>", "rest", "[value_poi_type]")
    '<go_r> a [value_poi_type] stop and a [value_poi_type] <eos_r>'
    """
    while value:
        start = text.find(value)
        if start == -1 or (start > 0 and text[start - 1] != " "):
            break
        end = start + len(value)
        while end < len(text) and (text[end].isalpha() or text[end].isdigit()):
            end += 1
        text = text[:start] + placeholder + text[end:]
    return text


def bert_text(text: str) -> str:
    """GALAXY's text after BERT's uncased tokenizer and its decoder (placeholders are never split).

    >>> bert_text("i 'm sorry , the [value_poi] does n't have [value_address] .")
    "i'm sorry , the [value_poi] doesn't have [value_address] ."
    """
    pieces = []
    for word in text.split():
        if _PLACEHOLDER.fullmatch(word):
            pieces.append(word)
            continue
        word = "".join(c for c in unicodedata.normalize("NFD", word.lower()) if unicodedata.category(c) != "Mn")
        pieces.append("".join(f" {c} " if _is_punctuation(c) else c for c in word))
    decoded = " ".join(" ".join(pieces).split())
    for old, new in _CLEAN_STRING:
        decoded = decoded.replace(old, new)
    return decoded


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    return 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126 or (
        unicodedata.category(char).startswith("P")
    )
