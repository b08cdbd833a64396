"""NLPO's top-p action mask."""

from __future__ import annotations

import pytest
import torch

from todrl.rl.nlpo import top_p_mask


def logits_of(probs):
    return torch.log(torch.tensor(probs))


def test_top_p_set_is_the_smallest_prefix_reaching_p():
    logits = logits_of([0.05, 0.5, 0.15, 0.3])
    assert top_p_mask(logits, 0.9).tolist() == [False, True, True, True]
    assert top_p_mask(logits, 0.7).tolist() == [False, True, False, True]
    assert top_p_mask(logits, 1.0).tolist() == [True, True, True, True]


def test_most_likely_token_is_always_kept():
    logits = logits_of([0.1, 0.9])
    assert top_p_mask(logits, 0.05).tolist() == [False, True]


def test_keep_ids_stay_allowed_whatever_their_probability():
    logits = logits_of([0.01, 0.9, 0.09])
    assert top_p_mask(logits, 0.5).tolist() == [False, True, False]
    assert top_p_mask(logits, 0.5, keep_ids=[0]).tolist() == [True, True, False]


def test_batched_masks_are_per_position():
    logits = torch.stack([logits_of([0.6, 0.3, 0.1]), logits_of([0.1, 0.1, 0.8])]).unsqueeze(0)
    assert top_p_mask(logits, 0.8).tolist() == [[[True, True, False], [False, False, True]]]


def test_rejects_bad_p():
    with pytest.raises(ValueError, match="top_p"):
        top_p_mask(torch.zeros(3), 0.0)
