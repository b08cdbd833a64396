"""Examples -> tokenized `datasets.Dataset` -> padded batches, for seq2seq and causal policies alike.

A causal policy reads `source` then writes `target` in one sequence; its loss
covers the target only (prompt labels are -100), so both kinds learn the same
conditional distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import datasets
import torch

from todrl.format import Example

IGNORE = -100


def encode_source(tokenizer, source: str, seq2seq: bool, max_length: int) -> list[int]:
    """Context ids, cut from the left so the current user turn always survives truncation.

    A causal chat model reads its input as the user message of its chat template (what it was instruction-tuned
    on); the template's own tokens are kept whole and only the message is cut.
    """
    ids = tokenizer(source, add_special_tokens=False)["input_ids"]
    if seq2seq:
        return ids[-(max_length - 1):] + [tokenizer.eos_token_id]
    if getattr(tokenizer, "chat_template", None):
        before, after = chat_wrapper(tokenizer)
        return before + ids[-max(max_length - len(before) - len(after), 1):] + after
    ids = ids[-(max_length - 1):]
    return ids if tokenizer.bos_token_id is None else [tokenizer.bos_token_id] + ids


def chat_wrapper(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the chat template puts before and after a user message (with the assistant's turn opened)."""
    marker = "\u2063todrl-message\u2063"
    text = tokenizer.apply_chat_template([{"role": "user", "content": marker}], add_generation_prompt=True, tokenize=False)
    return tuple(tokenizer(part, add_special_tokens=False)["input_ids"] if part else [] for part in text.split(marker))


def encode_target(tokenizer, target: str, max_length: int) -> list[int]:
    """Target ids, cut from the right, ending in end-of-sequence (what SFT learns and the RL SFT term scores)."""
    return tokenizer(target, add_special_tokens=False)["input_ids"][: max_length - 1] + [tokenizer.eos_token_id]


def pad_rows(rows: Sequence[list[int]], value: int, left: bool = False) -> torch.Tensor:
    """Rows of ids padded with `value` to the longest one."""
    width = max(len(r) for r in rows)
    return torch.tensor([([value] * (width - len(r)) + r) if left else (r + [value] * (width - len(r))) for r in rows])


def tokenize_examples(examples: Sequence[Example], tokenizer, seq2seq: bool, max_source_length: int, max_target_length: int) -> datasets.Dataset:
    def encode(batch):
        out = {"input_ids": [], "labels": []}
        for source, target in zip(batch["source"], batch["target"]):
            src = encode_source(tokenizer, source, seq2seq, max_source_length)
            tgt = encode_target(tokenizer, target, max_target_length)
            if seq2seq:
                out["input_ids"].append(src)
                out["labels"].append(tgt)
            else:
                out["input_ids"].append(src + tgt)
                out["labels"].append([IGNORE] * len(src) + tgt)
        return out

    table = datasets.Dataset.from_list([asdict(e) for e in examples]) if examples else datasets.Dataset.from_dict({"source": [], "target": []})
    return table.map(encode, batched=True, remove_columns=table.column_names, desc="tokenizing")


class Collator:
    """Pads `input_ids` (with an attention mask) and `labels` (with -100) to the batch's longest row."""

    def __init__(self, pad_token_id: int, seq2seq: bool):
        self.pad = pad_token_id
        self.seq2seq = seq2seq

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        ids = [f["input_ids"] for f in features]
        batch = {"input_ids": pad_rows(ids, self.pad), "attention_mask": pad_rows([[1] * len(r) for r in ids], 0)}
        batch["labels"] = pad_rows([f["labels"] for f in features], IGNORE)
        return batch
