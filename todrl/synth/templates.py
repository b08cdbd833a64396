"""The offline realizer: short machine-to-machine templates (SGD's M2M style) for user turns and delexicalized
system replies. Variety comes from several phrasings per intention and act, chosen by the dialogue's RNG, so a
regenerated turn gets other words for the same labels.
"""

from __future__ import annotations

import random

from todrl.data.records import DialogueAct
from todrl.synth.flow import Step

NOUNS = {"restaurant": "restaurant", "hotel": "place to stay", "attraction": "place to visit", "train": "train",
         "taxi": "taxi"}
PLURALS = {"restaurant": "restaurants", "hotel": "hotels", "attraction": "attractions", "train": "trains"}

PHRASES = {
    "area": "in the {v} area", "pricerange": "in the {v} price range", "food": "serving {v} food",
    "name": "called {v}", "type": "of the type {v}", "stars": "with a {v} star rating",
    "parking": "with parking {v}", "internet": "with internet {v}", "departure": "from {v}",
    "destination": "to {v}", "day": "on {v}", "leave": "leaving after {v}", "arrive": "arriving by {v}",
    "people": "for {v} people", "time": "at {v}", "stay": "for {v} nights", "department": "for the {v} department",
}
"""How a user states a slot-value."""

SLOT_NOUNS = {
    "address": "address", "phone": "phone number", "postcode": "postcode", "price": "price", "area": "area",
    "food": "type of food", "stars": "star rating", "parking": "parking", "internet": "internet", "type": "type",
    "time": "travel time", "id": "train id", "arrive": "arrival time", "leave": "departure time", "car": "car type",
    "day": "day", "people": "number of people", "stay": "length of stay", "pricerange": "price range",
    "name": "name", "departure": "departure", "destination": "destination", "reference": "reference number",
}

USER = {
    "inform": ("i am looking for a {noun} {phrases} .", "i need a {noun} {phrases} .",
               "can you help me find a {noun} {phrases} ?"),
    "more": ("it should be {phrases} .", "i would like it {phrases} .", "i prefer one {phrases} ."),
    "update": ("sorry , i meant {phrases} .", "actually , make that {phrases} .", "please change it to {phrases} ."),
    "request": ("can you give me the {slots} ?", "what is the {slots} ?", "i need the {slots} , please ."),
    "book": ("please book it {phrases} .", "i would like to book it {phrases} .", "book it {phrases} , please ."),
    "bye": ("thank you , that is all i need . goodbye .", "thanks for your help , bye .", "great , that is all . bye ."),
}

SYSTEM = {
    "choice": ("there are [value_choice] {plural} that match .", "i found [value_choice] {plural} ."),
    "request": ("which {slot} would you like ?", "do you have a preference for the {slot} ?"),
    "recommend": ("i recommend [value_name] .", "[value_name] matches your request ."),
    "train": ("[value_id] leaves at [value_leave] .", "train [value_id] departs at [value_leave] ."),
    "taxi": ("i have booked a [value_car] , the contact number is [value_phone] .",
             "your taxi is booked : a [value_car] , phone [value_phone] ."),
    "offerbook": ("shall i book it ?", "would you like me to book it ?"),
    "offerbooked": ("booking was successful , the reference number is [value_reference] .",
                    "i have booked it , your reference is [value_reference] ."),
    "inform": ("the {slot} is {value} .", "its {slot} is {value} ."),
    "reqmore": ("anything else ?", "is there anything else i can help with ?"),
    "bye": ("thank you for using our service . goodbye .", "have a nice day . goodbye ."),
}

LEXICAL_SLOTS = frozenset({"parking", "internet", "open"})
"""Slots whose values stay in the delexicalized text, as in MultiWOZ."""


def _join(items: list[str]) -> str:
    return " , ".join(items[:-1]) + " and " + items[-1] if len(items) > 1 else "".join(items)


def user_text(step: Step, opens_domain: bool, rng: random.Random) -> str:
    phrases = _join([PHRASES[s].format(v=v) for s, v in step.slot_values.items()])
    if step.intention == "inform":
        template = rng.choice(USER["inform" if opens_domain else "more"])
    else:
        template = rng.choice(USER[step.intention])
    return template.format(noun=NOUNS.get(step.domain, step.domain), phrases=phrases,
                           slots=_join([SLOT_NOUNS[s] for s in step.requests]))


def system_text(act: DialogueAct, values: dict[str, str], rng: random.Random) -> str:
    """A delexicalized reply saying exactly the act: a ``[value_<slot>]`` for each slot it informs."""
    parts: list[str] = []
    for domain, acts in act.items():
        if domain == "general":
            parts += [rng.choice(SYSTEM[name]) for name in acts]
            continue
        for name, slots in acts.items():
            if name == "inform" and "choice" in slots:
                parts.append(rng.choice(SYSTEM["choice"]).format(plural=PLURALS[domain]))
            elif name == "inform" and domain in ("train", "taxi") and slots in (["id", "leave"], ["car", "phone"]):
                parts.append(rng.choice(SYSTEM[domain]))
            elif name == "inform":
                parts += [rng.choice(SYSTEM["inform"]).format(
                    slot=SLOT_NOUNS[s], value=values.get(s, "unknown") if s in LEXICAL_SLOTS else f"[value_{s}]")
                    for s in slots]
            elif name == "request":
                parts += [rng.choice(SYSTEM["request"]).format(slot=SLOT_NOUNS[s]) for s in slots]
            else:
                parts.append(rng.choice(SYSTEM[name]))
    return " ".join(parts)
