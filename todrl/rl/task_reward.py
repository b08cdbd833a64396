"""The task reward of every generated token, aligned with the token that earned it.

The reward functions read text; the policy emits token ids.  Each id is turned
into the text it adds (`rewards.token_pieces` undoes SentencePiece and
byte-level space markers), so reward t belongs to response token t for a
seq2seq and a causal policy alike.  End-of-sequence and padding add no text.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from rewards import Gold, batch_token_rewards, parse_target, response_slots
from torch import Tensor

from todrl.format import Example

REWARDS = ("tod", "understanding", "generation", "none")
MODES = ("delta", "cumulative")


def gold_of(example: Example, offer_slots: Sequence[str] = ()) -> Gold:
    """The turn's gold; `offer_slots` that the gold response's placeholders give become its offered slots."""
    offered = set(offer_slots) & response_slots(parse_target(example.target).response) if offer_slots else set()
    return Gold(example.belief_state, example.requested, where=f"{example.dialogue_id} turn {example.turn}",
                offered=offered)


def response_pieces(tokenizer, response: Tensor, response_mask: Tensor) -> list[list[str]]:
    """Per sequence, the token strings of the generated ids; special tokens become empty pieces."""
    special = set(tokenizer.all_special_ids)
    pieces = []
    for ids, length in zip(response.tolist(), response_mask.sum(-1).tolist()):
        ids = ids[:length]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        pieces.append(["" if i in special else t for i, t in zip(ids, tokens)])
    return pieces


def task_rewards(
    tokenizer,
    response: Tensor,
    response_mask: Tensor,
    golds: Sequence[Gold],
    reward: str,
    mode: str,
    **options: float | bool,
) -> tuple[Tensor, Tensor]:
    """Per-token task rewards ``[batch, steps]`` and each generation's final reward ``[batch]``.

    ``reward="none"`` gives zeros: with only the KL penalty left, RL keeps the
    SFT policy (the ablation that isolates what the task reward adds).
    `options` are the reward's alpha, beta, symmetric, request_spans and request_weight.
    """
    if reward not in REWARDS:
        raise ValueError(f"reward must be one of {', '.join(REWARDS)}, got {reward!r}")
    if mode not in MODES:
        raise ValueError(f"reward mode must be one of {', '.join(MODES)}, got {mode!r}")
    per_token = torch.zeros(response.shape, dtype=torch.float32)
    final = torch.zeros(response.shape[0], dtype=torch.float32)
    if reward != "none":
        pieces = response_pieces(tokenizer, response, response_mask)
        rows = batch_token_rewards(pieces, golds, mode=mode, reward=reward, **options)
        for index, row in enumerate(rows):
            if row:
                per_token[index, : len(row)] = torch.tensor(row)
                final[index] = sum(row) if mode == "delta" else row[-1]
    return per_token.to(response.device), final.to(response.device)
