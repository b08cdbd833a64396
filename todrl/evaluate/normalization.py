"""Normalization of responses and belief states shared by every published MultiWOZ system's outputs.

Systems delexicalize with different placeholder names (``[value_name]``,
``[restaurant_name]``, ``[name]``, ``[hotel_reference]``...) and write states
with MultiWOZ 2.1 or 2.2 slot names (``leaveAt``, ``leave at``, ``leave``).
The standard evaluator maps all of them onto one small set of placeholder
classes and one set of slot names before scoring, and so do we: Inform and
Success look for the classes (``NAME``, ``TRAINID``, ``PHONE``...) in the
normalized response, BLEU compares normalized responses.
"""

from __future__ import annotations

import re
from functools import lru_cache

from todrl.data.normalize import state_slot_name as canonical_slot
from todrl.evaluate import moses

_CLASS_MEMBERS: dict[str, tuple[str, ...]] = {
    "ADDRESS": ("address", "attraction_address", "hospital_address", "hotel_address", "police_address",
                "restaurant_address", "value_address"),
    "AREA": ("area", "value_area", "attraction_area", "restaurant_area", "hotel_area"),
    "TIME": ("booktime", "value_time", "time", "duration", "value_duration", "train_duration", "arriveby",
             "taxi_arriveby", "value_arrive", "arrive by", "train_arriveby", "leaveat", "value_leave", "leave at",
             "train_leaveat", "train_leave", "train_arrive", "taxi_leaveat"),
    "DAY": ("day", "value_day", "bookday", "train_day"),
    "PLACE": ("destination", "value_destination", "departure", "value_departure", "value_place",
              "train_departure", "train_destination", "taxi_destination", "taxi_departure"),
    "FOOD": ("food", "value_food", "restaurant_food"),
    "NAME": ("name", "attraction_name", "hospital_name", "hotel_name", "police_name", "restaurant_name",
             "value_name"),
    "PHONE": ("phone", "attraction_phone", "hospital_phone", "hotel_phone", "police_phone", "restaurant_phone",
              "taxi_phone", "value_phone"),
    "POST": ("postcode", "attraction_postcode", "hospital_postcode", "hotel_postcode", "restaurant_postcode",
             "value_postcode", "police_postcode"),
    "PRICE": ("price", "value_price", "entrancefee", "entrance fee", "train_price", "attraction_entrancefee",
              "pricerange", "value_pricerange", "price range", "restaurant_pricerange", "hotel_pricerange",
              "attraction_pricerange", "attraction_price", "value_fee", "fee"),
    "REFERENCE": ("ref", "attraction_reference", "hotel_reference", "restaurant_reference", "train_reference",
                  "value_reference", "reference"),
    "COUNT": ("stars", "value_stars", "hotel_stars", "bookstay", "value_stay", "stay", "bookpeople",
              "value_people", "people", "choice", "value_choice", "value_count", "attraction_choice",
              "hotel_choice", "restaurant_choice", "train_choice"),
    "TYPE": ("type", "taxi_type", "taxi_car", "value_type", "value_car", "car", "restaurant_type", "hotel_type",
             "attraction_type"),
    "TRAINID": ("trainid", "train_id", "value_id", "id", "train", "train_trainid"),
    "INTERNET": ("internet", "hotel_internet", "value_internet"),
    "PARKING": ("parking", "hotel_parking", "value_parking"),
    "ID": ("hospital_id", "attraction_id", "restaurant_id"),
    "DEPARTMENT": ("value_department", "department", "hospital_department"),
    "OPEN": ("openhours", "value_open", "open"),
}  # fmt: skip
"""Placeholder class -> the placeholder names systems use for it (MultiWOZ 2.2 names, the domain-prefixed
names of DAMD/HDSA/LAVA, the ``value_`` names of UBAR/PPTOD and of todrl)."""

PLACEHOLDER_CLASS: dict[str, str] = {name: cls for cls, names in _CLASS_MEMBERS.items() for name in names}
"""Placeholder name (lower-case, without brackets) -> class; unknown names are dropped from responses."""

_PLACEHOLDER = re.compile(r"\[([\w\s\d]+)\](es|s|-s|-es|)")
"""A placeholder with an optional plural suffix ("[value_price]s" is one PRICE)."""


def _placeholder_class(match: re.Match[str]) -> str:
    return PLACEHOLDER_CLASS.get(match.group(1).lower(), "")


@lru_cache(maxsize=200_000)
def normalize_response(text: str) -> str:
    """A response as scored: lower-case, placeholders as classes, plural/adverb suffixes dropped, Moses round trip."""
    text = _PLACEHOLDER.sub(_placeholder_class, text.lower())
    return moses.roundtrip(text.replace("-s", "").replace("-ly", ""))


def unknown_placeholders(text: str) -> set[str]:
    """Placeholder names in `text` that map to no class (the evaluator drops them: worth a warning)."""
    return {m.group(1) for m in _PLACEHOLDER.finditer(text.lower()) if m.group(1) not in PLACEHOLDER_CLASS}


# ----------------------------------------------------------------------------------------------- states

_NAME_FIXES: dict[str, dict[str, str]] = {
    "restaurant": {
        "hotel du vin bistro": "hotel du vin and bistro", "the river bar and grill": "the river bar steakhouse and grill",
        "nando's": "nandos", "city center b and b": "city center north b and b", "acorn house": "acorn guest house",
        "caffee uno": "caffe uno", "cafe uno": "caffe uno", "rosa's": "rosas bed and breakfast",
        "restaurant called two two": "restaurant two two", "restaurant 2 two": "restaurant two two",
        "restaurant two 2": "restaurant two two", "restaurant 2 2": "restaurant two two",
        "restaurant 1 7": "restaurant one seven", "restaurant 17": "restaurant one seven",
    },
    "hotel": {
        "lime house": "limehouse", "cityrooms": "cityroomz", "whale of time": "whale of a time",
        "huntingdon hotel": "huntingdon marriott hotel",
        "holiday inn exlpress, cambridge": "express by holiday inn cambridge",
        "university hotel": "university arms hotel", "arbury guesthouse and lodge": "arbury lodge guesthouse",
        "bridge house": "bridge guest house", "arbury guesthouse": "arbury lodge guesthouse",
        "nandos in the city centre": "nandos city centre",
    },
    "attraction": {
        "broughton gallery": "broughton house gallery", "scudamores punt co": "scudamores punting co",
        "cambridge botanic gardens": "cambridge university botanic gardens", "the junction": "junction theatre",
        "trinity street college": "trinity college", "christ college": "christ's college",
        "christs": "christ's college", "history of science museum": "whipple museum of the history of science",
        "parkside pools": "parkside swimming pool",
        "the botanical gardens at cambridge university": "cambridge university botanic gardens",
        "cafe jello museum": "cafe jello gallery",
    },
}  # fmt: skip
"""Venue names written too far from the database entry for fuzzy matching, checked in this order."""

_TYPE_FIXES = {"swimming pool": "swimmingpool", "multiple sports": "mutliple sports", "night club": "nightclub",
               "guest house": "guesthouse"}  # fmt: skip
"""Attraction and hotel types as the official database spells them (its typo "mutliple" included)."""
_FOOD_FIXES = {
    "eriterean": "mediterranean", "brazilian": "portuguese", "sea food": "seafood", "portugese": "portuguese",
    "modern american": "north american", "americas": "north american", "intalian": "italian",
    "italain": "italian", "asian or oriental": "asian", "english": "british", "australasian": "australian",
    "gastropod": "gastropub", "brutish": "british", "bristish": "british", "europeon": "european",
}  # fmt: skip
_TIME_WORDS = {
    "afternoon": "13:00", "lunch": "12:00", "noon": "12:00", "mid-day": "12:00", "around lunch time": "12:00",
    "morning": "08:00", "seven o'clock tomorrow evening": "07:00", "three forty five p.m": "15:45",
    "one thirty p.m.": "13:30", "six fourty five": "06:45", "eight thirty": "08:30",
}  # fmt: skip
_TIME_PREFIXES = {"one o'clock p.m": "13:00", "ten o'clock a.m": "10:00"}
_HH_MM = re.compile(r"[0-9][0-9]:[0-9][0-9]")


def canonical_name(name: str) -> str:
    name = name.strip().lower().replace(" & ", " and ").replace("&", " and ").replace(" '", "'")
    for fixes in _NAME_FIXES.values():
        if name in fixes:
            return fixes[name]
    return name


def canonical_time(value: str) -> str:
    """Clock time as hh:mm where the spelling allows ("5:45pm" -> "17:45", "after 1400" -> "14:00").

    Deliberately literal: times the standard evaluator cannot read stay as they are, and
    unreadable values count as "00:00"-like zero minutes in database queries, as there.
    """
    time = value.strip().lower()
    if time in _TIME_WORDS:
        return _TIME_WORDS[time]
    for prefix, canonical in _TIME_PREFIXES.items():
        if time.startswith(prefix):
            return canonical
    if time.startswith("by"):
        time = time[3:]
    if time.startswith("after"):
        time = time[5:].strip()
    if time.startswith("afer"):
        time = time[4:].strip()
    if time.endswith("am"):
        time = time[:-2].strip()
    if time.endswith("a.m."):
        time = time[:-4].strip()
    if time.endswith(("pm", "p.m.")):
        time = time[:-2].strip() if time.endswith("pm") else time[:-4].strip()
        parts = time.split(":")
        if len(parts) == 2 and parts[0].strip().isdigit():
            return f"{int(parts[0]) + 12}:{parts[1]}"
        if len(parts) == 1 and parts[0].isdigit():
            return f"{int(parts[0]) + 12}:00"
    if not time:
        return "00:00"
    if time[-1] in ".,?":
        time = time[:-1]
    if time.isdigit() and len(time) == 4:
        return time[:2] + ":" + time[2:]
    if time.isdigit():
        return time.zfill(2) + ":00"
    if ":" in time:
        time = time.replace(" ", "")
    if len(time) == 4 and time[1] == ":":
        return "0" + time
    return time


def time_to_minutes(time: str) -> int:
    """Minutes after midnight of an "hh:mm..." string; 0 when it does not start like one."""
    if not _HH_MM.match(time):
        return 0
    return int(time[:2]) * 60 + int(time[3:5])  # only the leading hh:mm: generated text may run on ("19:15arrive")


def canonical_value(slot: str, value: str) -> str:
    """A state value as the database spells it: canonical names, types, foods, times; "free" parking is "yes"."""
    if slot in ("name", "destination", "departure"):
        return canonical_name(value)
    if slot == "type":
        return _TYPE_FIXES.get(value, value)
    if slot == "food":
        food = value.strip().lower()
        return _FOOD_FIXES.get(food, food)
    if slot in ("arrive", "leave", "arriveby", "leaveat", "time"):
        return canonical_time(value)
    if slot in ("parking", "internet") and value == "free":
        return "yes"
    return value


@lru_cache(maxsize=65536)
def _normalize_pair(slot: str, value: str) -> tuple[str, str]:
    slot = canonical_slot(slot)
    return slot, canonical_value(slot, value)


def normalize_state(state: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """Belief state with canonical slot names and values; the input is left untouched."""
    return {domain: dict(_normalize_pair(slot, value) for slot, value in slots.items()) for domain, slots in state.items()}
