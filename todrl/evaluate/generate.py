"""From a policy to a predictions file: generate every turn of some dialogues and read the spans back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from rewards.spans import Vocabulary, parse_target

from todrl.cot import chain_states
from todrl.data.records import Dialogue
from todrl.evaluate.predictions import PredictedTurn, Predictions
from todrl.format import build_examples
from todrl.generation import generate_texts
from todrl.instruct import InstructFormat, chain_targets


def predict_dialogues(model, tokenizer, dialogues: Sequence[Dialogue], vocabulary: Vocabulary, progress: bool = False,
                      shortest_first: bool = False, form: InstructFormat | None = None, task: str = "e2e",
                      **generation) -> tuple[Predictions, list[str]]:
    """Greedy generation of every turn, each conditioned on the gold previous turn (as in training): end-to-end,
    for a policy of the instruction format `form` its sub-tasks chained, for `task` dst the state alone, for
    dst-cot its two stages chained.

    Returns the predictions in the standard format and the raw targets (end-to-end, or the state span), in
    `build_examples` order (callers that score rewards need the text).
    `shortest_first` decodes the sources by length, so that a batch pads little.
    """

    def generate(sources: Sequence[str]) -> list[str]:
        order = sorted(range(len(sources)), key=lambda i: len(sources[i])) if shortest_first else range(len(sources))
        decoded = generate_texts(model, tokenizer, [sources[i] for i in order], progress=progress, **generation)
        texts = [""] * len(sources)
        for index, text in zip(order, decoded):
            texts[index] = text
        return texts

    if form is not None:
        texts = chain_targets(generate, form, dialogues, vocabulary)
    elif task == "dst-cot":
        texts = chain_states(generate, dialogues)
    else:
        texts = generate([e.source for e in build_examples(dialogues, task=task)])
    return read_predictions(dialogues, texts, vocabulary), texts


def predict_checkpoint(checkpoint: str | Path, dialogues: Sequence[Dialogue], vocabulary: Vocabulary,
                       progress: bool = False, form: InstructFormat | None = None, precision: str = "fp32",
                       task: str = "e2e", **generation) -> Predictions:
    """A checkpoint's predictions, its adapter (if any) merged first so that decoding costs what the base's does."""
    from todrl.models import load_merged, set_precision

    model, tokenizer = load_merged(checkpoint)
    set_precision(model, precision).to("cuda" if torch.cuda.is_available() else "cpu")
    return predict_dialogues(model, tokenizer, dialogues, vocabulary, progress, shortest_first=True, form=form,
                             task=task, **generation)[0]


def read_predictions(dialogues: Sequence[Dialogue], texts: Sequence[str], vocabulary: Vocabulary) -> Predictions:
    """Generated targets, one per turn in `build_examples` order, as predictions in the standard format."""
    examples = build_examples(dialogues, task="e2e")
    if len(texts) != len(examples):
        raise ValueError(f"{len(texts)} generations for the {len(examples)} turns of {len(dialogues)} dialogues")
    predictions: Predictions = {dialogue.id: [] for dialogue in dialogues}
    for example, text in zip(examples, texts):
        target = parse_target(text, vocabulary)
        predictions[example.dialogue_id].append(PredictedTurn(response=target.response, state=target.belief_state))
    return predictions
