"""From a policy to a predictions file: generate every turn of some dialogues and read the spans back."""

from __future__ import annotations

from collections.abc import Sequence

from rewards.spans import parse_target

from todrl.data.records import Dialogue
from todrl.evaluate.dst import slot_inventory
from todrl.evaluate.predictions import PredictedTurn, Predictions
from todrl.format import build_examples
from todrl.generation import generate_texts


def predict_dialogues(model, tokenizer, dialogues: Sequence[Dialogue], dataset: str, progress: bool = False,
                      **generation) -> tuple[Predictions, list[str]]:
    """Greedy end-to-end generation of every turn, each conditioned on the gold previous turn (as in training).

    Returns the predictions in the standard format and the raw generations, in
    `build_examples` order (callers that score rewards need the text).
    """
    examples = build_examples(dialogues, task="e2e")
    texts = generate_texts(model, tokenizer, [e.source for e in examples], progress=progress, **generation)
    return read_predictions(dialogues, texts, dataset), texts


def read_predictions(dialogues: Sequence[Dialogue], texts: Sequence[str], dataset: str) -> Predictions:
    """Generated targets, one per turn in `build_examples` order, as predictions in the standard format."""
    examples = build_examples(dialogues, task="e2e")
    if len(texts) != len(examples):
        raise ValueError(f"{len(texts)} generations for the {len(examples)} turns of {len(dialogues)} dialogues")
    # MultiWOZ's slot names are built into the span grammar; other corpora read theirs off the gold states.
    slots = None if dataset == "multiwoz21" else {d: sorted(s) for d, s in slot_inventory(dialogues).items()}
    predictions: Predictions = {dialogue.id: [] for dialogue in dialogues}
    for example, text in zip(examples, texts):
        target = parse_target(text, slots)
        predictions[example.dialogue_id].append(PredictedTurn(response=target.response, state=target.belief_state))
    return predictions
