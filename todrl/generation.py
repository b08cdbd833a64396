"""Batched generation of targets from sources, for seq2seq and causal policies."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from todrl.batching import encode_source
from todrl.format import clean_generation
from todrl.models import is_seq2seq


def pad_sources(tokenizer, sources: Sequence[str], seq2seq: bool, max_length: int, device) -> dict[str, torch.Tensor]:
    """Left-pad for causal models (generation continues at the right edge), right-pad for seq2seq."""
    rows = [encode_source(tokenizer, s, seq2seq, max_length) for s in sources]
    width = max(len(r) for r in rows)
    pad = tokenizer.pad_token_id
    ids = [r + [pad] * (width - len(r)) if seq2seq else [pad] * (width - len(r)) + r for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) if seq2seq else [0] * (width - len(r)) + [1] * len(r) for r in rows]
    return {"input_ids": torch.tensor(ids, device=device), "attention_mask": torch.tensor(mask, device=device)}


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    sources: Sequence[str],
    batch_size: int = 32,
    max_source_length: int = 256,
    max_new_tokens: int = 160,
    progress: bool = False,
    **generate_kwargs,
) -> list[str]:
    """Greedy (by default) decoding; returns cleaned text with markers kept (they are normal tokens)."""
    seq2seq = is_seq2seq(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    outputs: list[str] = []
    starts = range(0, len(sources), batch_size)
    for start in tqdm(starts, desc="generating", disable=not progress):
        batch = pad_sources(tokenizer, sources[start : start + batch_size], seq2seq, max_source_length, device)
        generated = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id, **generate_kwargs,
        )
        if not seq2seq:
            generated = generated[:, batch["input_ids"].shape[1]:]
        outputs.extend(clean_generation(t) for t in tokenizer.batch_decode(generated, skip_special_tokens=True))
    model.train(was_training)
    return outputs
