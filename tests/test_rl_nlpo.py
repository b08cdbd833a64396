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


# ----------------------------------------------------------------------------- the mask policy

from todrl.adapters import AdapterConfig, apply_adapter  # noqa: E402
from todrl.models import build_tiny  # noqa: E402
from todrl.rl.nlpo import MaskPolicy  # noqa: E402
from todrl.rl.rollout import StepDecoder  # noqa: E402

TEXTS = ["i need a cheap hotel in the east", "the phone number is [value_phone] .", "book a taxi at 17:15"] * 10


@pytest.fixture(params=["lora", "adalora", "full"])
def policy(request):
    model, tokenizer = build_tiny("tiny", TEXTS, ["<sos_b>", "<eos_b>"], vocab_size=80)
    model = apply_adapter(model, AdapterConfig(type=request.param), total_steps=100).eval()
    batch = tokenizer(["i need a cheap hotel", "book a taxi"], return_tensors="pt", padding=True)
    return model, batch.input_ids, batch.attention_mask


def first_step_logits(decoder_owner, query, query_mask):
    return decoder_owner(query, query_mask)(None)


@torch.no_grad()
def perturb(model):
    """Stand-in for training: move every trainable tensor."""
    generator = torch.Generator().manual_seed(1)
    for param in model.parameters():
        if param.requires_grad:
            param.add_(torch.randn(param.shape, generator=generator) * 2.0)


def test_mask_policy_follows_the_policy_only_when_resynced(policy):
    model, query, query_mask = policy
    mask_policy = MaskPolicy(model)
    policy_logits = lambda: StepDecoder(model, query, query_mask)(None)  # noqa: E731
    snapshot_mask = lambda: mask_policy.masker(query, query_mask, 0.5, keep_ids=())(None)  # noqa: E731
    assert torch.allclose(mask_policy.masker(query, query_mask, 1.0, ()).decoder(None), policy_logits(), atol=1e-5)
    before = snapshot_mask()
    trainable = [(n, p.requires_grad) for n, p in model.named_parameters()]
    perturb(model)
    assert torch.equal(snapshot_mask(), before), "the mask policy must not see updates before a re-sync"
    assert [(n, p.requires_grad) for n, p in model.named_parameters()] == trainable, "using the mask policy changed requires_grad"
    mask_policy.sync()
    after = snapshot_mask()
    assert not torch.equal(after, before), "re-sync did not change the mask"
    assert torch.allclose(mask_policy.masker(query, query_mask, 1.0, ()).decoder(None), policy_logits(), atol=1e-5)
    assert mask_policy.syncs == 2


def test_mask_snapshot_state_round_trip(policy):
    model, query, query_mask = policy
    mask_policy = MaskPolicy(model)
    saved = mask_policy.state_dict()
    perturb(model)
    mask_policy.sync()
    mask_policy.load_state_dict(saved)
    assert mask_policy.syncs == 1
    for (snapshot, _), tensor in zip(mask_policy.pairs, saved["tensors"]):
        assert torch.equal(snapshot, tensor)
