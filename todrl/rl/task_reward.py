"""The task reward of every generated token, aligned with the token that earned it.

The reward functions read text; the policy emits token ids.  Each id is turned
into the text it adds (`rewards.token_pieces` undoes SentencePiece and
byte-level space markers), so reward t belongs to response token t for a
seq2seq and a causal policy alike.  End-of-sequence and padding add no text.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass

import torch
from rewards import Gold, RewardConfig, Vocabulary, parse_target
from rewards.score import token_rewards_and_parts
from rewards.gold import offered_in
from torch import Tensor

from todrl.format import Example


def gold_of(example: Example, config: RewardConfig) -> Gold:
    """The turn's gold; the `config.offer_slots` that its gold response gives become its offered slots."""
    return Gold(example.belief_state, example.requested, where=f"{example.dialogue_id} turn {example.turn}",
                offered=offered_in(config.offer_slots, example.target))


def judged_by(config: RewardConfig) -> RewardConfig:
    """The reward a run's generations are scored and selected by: its own, or Rtod for the control run."""
    return dataclasses.replace(config, type="tod") if config.type == "none" else config


def response_pieces(tokenizer, response: Tensor, response_mask: Tensor) -> list[list[str]]:
    """Per sequence, the token strings of the generated ids; special tokens become empty pieces."""
    special = set(tokenizer.all_special_ids)
    pieces = []
    for ids, length in zip(response.tolist(), response_mask.sum(-1).tolist()):
        ids = ids[:length]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        pieces.append(["" if i in special else t for i, t in zip(ids, tokens)])
    return pieces


@dataclass
class TaskRewards:
    per_token: Tensor
    """[batch, steps]: what each token earned."""
    final: Tensor
    """[batch]: each generation's reward."""
    parts: dict[str, Tensor]
    """Ru, Rg and Rtod of each generation ([batch] each), logged whichever reward is trained."""


def task_rewards(tokenizer, response: Tensor, response_mask: Tensor, golds: Sequence[Gold],
                 config: RewardConfig | Sequence[RewardConfig], mode: str, vocabulary: Vocabulary) -> TaskRewards:
    """Per-token task rewards of a batch of generations, under one reward or one per generation (the instruction
    format rewards each sub-task's span by its own).

    ``config.type == "none"`` gives zeros: with only the KL penalty left, RL
    keeps the SFT policy (the ablation that isolates what the task reward adds).
    """
    configs = [config] * len(golds) if isinstance(config, RewardConfig) else config
    per_token = torch.zeros(response.shape, dtype=torch.float32)
    final = torch.zeros(response.shape[0], dtype=torch.float32)
    parts = []
    for index, (pieces, gold, own) in enumerate(zip(response_pieces(tokenizer, response, response_mask), golds, configs)):
        row, generation_parts = token_rewards_and_parts(pieces, gold, mode, config=own, vocabulary=vocabulary)
        parts.append(generation_parts)
        if row:  # all zeros for config.type "none"
            per_token[index, : len(row)] = torch.tensor(row)
            final[index] = sum(row) if mode == "delta" else row[-1]
    stacked = {name: torch.tensor([part[name] for part in parts]) for name in ("understanding", "generation", "tod")}
    return TaskRewards(per_token.to(response.device), final.to(response.device), stacked)


def check_gold_states(examples: Sequence[Example], vocabulary: Vocabulary, where: str) -> None:
    """Stop before training when the span grammar cannot read the gold states back (Ru would be 0 everywhere)."""
    examples = [e for e in examples if e.subtask in ("e2e", "state")]  # the others' targets hold no state
    gold = sum(len(pairs) for e in examples for pairs in e.belief_state.values())
    read = sum(len(pairs) for e in examples for pairs in parse_target(e.target, vocabulary).belief_state.values())
    if gold and read < gold / 2:
        raise ValueError(
            f"{where}: the span grammar reads {read} of the {gold} belief pairs of the gold targets back; the slot "
            "vocabulary does not fit this corpus (pass the reader's todrl.data.span_vocabulary), so the "
            "understanding reward would be 0"
        )
