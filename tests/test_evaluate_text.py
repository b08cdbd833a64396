"""Response normalization, Moses round trip, BLEU and lexical richness of the evaluators."""

from __future__ import annotations

import math

import pytest
import sacrebleu

from todrl.evaluate import moses
from todrl.evaluate.bleu import ReferenceBleu, legacy_bleu
from todrl.evaluate.lexical import msttr, richness, tokenize
from todrl.evaluate.normalization import (
    canonical_slot,
    canonical_time,
    canonical_value,
    normalize_response,
    normalize_state,
    time_to_minutes,
    unknown_placeholders,
)


@pytest.mark.parametrize(
    "text, expected",
    [  # expected outputs of the reference Moses port (sacremoses), English
        ("i 'm sure it 's open , is n't it ?", "i 'm sure it' s open, is n't it?"),
        ("the jones ' house is near .", "the jones' house is near."),
        ("wait ... what ?", "wait... what?"),
        ("it costs 2,500 pounds , ok", "it costs 2,500 pounds, ok"),
        ("( see NAME ) for $ 5 .", "(see NAME) for $5."),
        ("don't worry, it's fine.", "don't worry, it's fine."),
        ('he said " hello " and left', 'he said "hello" and left'),
        ("no. 5 is e.g. fine", "no. 5 is e.g. fine"),
    ],
)
def test_moses_roundtrip_matches_reference_port(text: str, expected: str) -> None:
    assert moses.roundtrip(text) == expected


def test_placeholders_become_classes_whatever_their_naming() -> None:
    text = "[restaurant_name] is at [value_address] , [value_price]s , call [hotel_phone] or [train_id]"
    assert normalize_response(text) == "NAME is at ADDRESS, PRICE, call PHONE or TRAINID"
    assert normalize_response("there are [value_choice] restaurant -s") == "there are COUNT restaurant"
    assert normalize_response("the [bogus_slot] is ready") == "the is ready"
    assert unknown_placeholders("the [bogus_slot] and [value_name]") == {"bogus_slot"}


@pytest.mark.parametrize(
    "raw, canonical",
    [("5:45pm", "17:45"), ("after 1400", "14:00"), ("9:30", "09:30"), ("lunch", "12:00"), ("by 08:15", "08:15"),
     ("7", "07:00"), ("", "00:00"), ("whenever", "whenever")],
)  # fmt: skip
def test_canonical_time(raw: str, canonical: str) -> None:
    assert canonical_time(raw) == canonical


def test_state_normalization_uses_database_spellings() -> None:
    state = {"train": {"leaveAt": "5pm", "arriveBy": "9:30"}, "attraction": {"type": "multiple sports"},
             "hotel": {"price range": "cheap", "parking": "free", "name": "lime house"}}  # fmt: skip
    assert normalize_state(state) == {
        "train": {"leave": "17:00", "arrive": "09:30"},
        "attraction": {"type": "mutliple sports"},
        "hotel": {"pricerange": "cheap", "parking": "yes", "name": "limehouse"},
    }
    assert canonical_slot("Leave At") == "leave"
    assert canonical_value("food", " English ") == "british"
    assert time_to_minutes("17:30") == 1050 and time_to_minutes("half past") == 0
    assert time_to_minutes("19:15arrive19:15") == 1155  # generated text that runs on past the time


def test_reference_bleu_equals_sacrebleu_on_any_subset() -> None:
    refs = {i: text for i, text in enumerate(["the phone is PHONE.", "i booked NAME for you, ref REFERENCE.",
                                              "there are COUNT trains leaving after TIME.", "goodbye!"])}  # fmt: skip
    hyps = {0: "phone is PHONE.", 1: "i have booked NAME, the reference is REFERENCE.", 2: "COUNT trains leave.", 3: "bye!"}
    bleu = ReferenceBleu(refs)
    for keys in ([0, 1, 2, 3], [1, 2], [3]):
        expected = sacrebleu.corpus_bleu([hyps[k] for k in keys], [[refs[k] for k in keys]]).score
        assert bleu.score((k, hyps[k]) for k in keys) == pytest.approx(expected)
    assert bleu.score(refs.items()) == pytest.approx(100.0)


def test_legacy_bleu() -> None:
    assert legacy_bleu([("a b c d e", "a b c d e")]) == pytest.approx(100.0)
    # 4 of 5 unigrams, 3 of 4 bigrams, 2 of 3 trigrams, 1 of 2 four-grams; same length: no brevity penalty
    expected = 100 * math.exp(sum(math.log(p) for p in (4 / 5, 3 / 4, 2 / 3, 1 / 2)) / 4)
    assert legacy_bleu([("a b c d x", "a b c d e")]) == pytest.approx(expected, rel=1e-5)
    assert legacy_bleu([("a b", "a b c d")]) < legacy_bleu([("a b c d", "a b c d")])


def test_lexical_richness_hand_computed() -> None:
    assert tokenize("Hello, world.") == ["hello", "world"]
    assert tokenize("it is.") == ["it", "is"]
    result = richness(["a b a", "b a"])  # tokens a b a | b a
    assert result.avg_length == 2.5
    assert (result.num_unigrams, result.num_bigrams, result.num_trigrams) == (2, 2, 1)
    assert result.entropy == pytest.approx(-(0.6 * math.log2(0.6) + 0.4 * math.log2(0.4)))
    # bigrams (a,b) once, (b,a) twice, over 5 tokens; P(b|a) = 1/3, P(a|b) = 2/2
    assert result.cond_entropy == pytest.approx(-(1 / 5 * math.log2(1 / 3) + 2 / 5 * math.log2(1)))
    assert msttr(["x"] * 50 + [str(i) for i in range(50)] + ["tail"]) == pytest.approx((1 / 50 + 1) / 2)
    with pytest.raises(ValueError):
        richness([])
