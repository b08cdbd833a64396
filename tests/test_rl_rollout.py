"""Rollouts: step-by-step sampling agrees with teacher-forced scoring; rewards land on the right tokens."""

from __future__ import annotations

import copy
import itertools
import warnings

import pytest
import torch
from rewards import Gold, RewardConfig, reward_parts, tod_reward
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from todrl.models import build_tiny, is_seq2seq
from todrl.rl.ppo import token_log_probs
from todrl.rl.rollout import StepDecoder, sample, score, top_k_filter
from todrl.format import Example
from todrl.data import span_vocabulary
from todrl.rl.task_reward import check_gold_states, gold_of, response_pieces, task_rewards

MARKERS = ["<sos_b>", "<eos_b>", "<sos_a>", "<eos_a>", "<sos_r>", "<eos_r>", "[hotel]", "[taxi]", "[inform]", "[value_phone]"]
TARGET = ("<sos_b> [hotel] area east stars 4 [taxi] leave 17:15 <eos_b> <sos_a> [hotel] [inform] phone <eos_a> "
          "<sos_r> the phone is [value_phone] . <eos_r>")
VOCABULARY = span_vocabulary("multiwoz21")
GOLD = Gold({"hotel": {"area": "east", "stars": "4"}, "taxi": {"leave": "17:15"}}, {"hotel": ["phone"]})
TEXTS = [TARGET, "i need a hotel in the east with 4 stars", "book a taxi to leave at 17:15 please", "what is the phone ?"] * 10
SOURCES = ["i need a hotel in the east", "a taxi please at 17:15 with 4 stars"]


@pytest.fixture(scope="module", params=["tiny", "tiny-llama"])
def tiny(request):
    model, tokenizer = build_tiny(request.param, TEXTS, MARKERS, vocab_size=120)
    return model.eval(), tokenizer


def queries(tokenizer, left: bool):
    tokenizer.padding_side = "left" if left else "right"
    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    return batch.input_ids, batch.attention_mask


def test_step_decoder_matches_teacher_forced_scores_with_padding(tiny):
    model, tokenizer = tiny
    query, query_mask = queries(tokenizer, left=not model.config.is_encoder_decoder)
    assert (query_mask == 0).any(), "the test needs a padded batch"
    decoder = StepDecoder(model, query, query_mask, keep_hidden=True)
    samples = sample(decoder, 10, tokenizer.eos_token_id, tokenizer.pad_token_id, top_k=3,
                     generator=torch.Generator().manual_seed(0))
    replay = StepDecoder(model, query, query_mask)
    steps, last = [], None
    for t in range(samples.response.shape[1]):
        steps.append(replay(last))
        last = samples.response[:, t]
    with torch.no_grad():
        logits, hidden = score(model, query, query_mask, samples.response, samples.response_mask)
    real = samples.response_mask.bool()
    assert torch.allclose(torch.stack(steps, 1)[real], logits[real], atol=1e-4)
    # what sampling stored is what the update recomputes: log-probs of the full distribution (not the top-k cut), states
    assert torch.allclose(samples.logprobs[real], token_log_probs(logits, samples.response)[real], atol=1e-4)
    assert torch.equal(samples.logprobs, samples.unmasked_logprobs)
    assert torch.allclose(samples.hidden[real], hidden[real], atol=1e-4)


def test_sampling_ends_at_eos_and_pads_after(tiny):
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    query, query_mask = queries(tokenizer, left=not model.config.is_encoder_decoder)

    def eos_after_three(last):
        allowed = torch.zeros(query.shape[0], len(tokenizer), dtype=torch.bool)
        allowed[0, eos if eos_after_three.calls >= 2 else 5] = True
        allowed[1, 6] = True
        eos_after_three.calls += 1
        return allowed

    eos_after_three.calls = 0
    samples = sample(StepDecoder(model, query, query_mask), 6, eos, tokenizer.pad_token_id, masker=eos_after_three)
    assert samples.response[0].tolist() == [5, 5, eos, tokenizer.pad_token_id, tokenizer.pad_token_id, tokenizer.pad_token_id]
    assert samples.response_mask[0].tolist() == [1, 1, 1, 0, 0, 0]
    assert samples.response[1].tolist() == [6] * 6 and samples.response_mask[1].tolist() == [1] * 6
    # the stored action mask is what the masker allowed on real steps, everything on padding
    assert samples.action_mask[0, 0].nonzero().flatten().tolist() == [5]
    assert samples.action_mask[0, 4].all()
    # a single allowed token has probability 1 under the masked, renormalized distribution
    real = samples.response_mask.bool()
    assert torch.allclose(samples.logprobs[real], torch.zeros(9), atol=1e-6)
    assert (samples.unmasked_logprobs[real] < 0).all()
    assert samples.logprobs[~real].eq(0).all()


def test_top_k_filter_keeps_k_best():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.isfinite(top_k_filter(logits, 2)).tolist() == [[False, True, True, False]]
    assert torch.equal(top_k_filter(logits, 0), logits)


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2/Llama-3 style byte-level BPE tokenizer (pieces like 'Ġphone'), trained offline."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(TEXTS, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|end|>"], show_progress=False))
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|end|>", pad_token="<|end|>")
    wrapped.add_tokens(MARKERS)
    return wrapped


@pytest.mark.parametrize("kind", ["sentencepiece", "byte-level"])
def test_task_rewards_land_on_the_tokens_that_earn_them(kind):
    tokenizer = build_tiny("tiny", TEXTS, MARKERS, vocab_size=120)[1] if kind == "sentencepiece" else byte_level_tokenizer()
    ids = tokenizer(TARGET, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    response = torch.tensor([ids + [tokenizer.pad_token_id] * 3])
    mask = torch.tensor([[1] * len(ids) + [0] * 3])
    earned = task_rewards(tokenizer, response, mask, [GOLD], RewardConfig(), "cumulative", VOCABULARY)
    cumulative, final = earned.per_token, earned.final
    delta_earned = task_rewards(tokenizer, response, mask, [GOLD], RewardConfig(), "delta", VOCABULARY)
    delta, final_delta = delta_earned.per_token, delta_earned.final
    tokens = tokenizer.convert_ids_to_tokens(ids)
    eos_b, eos_a = tokens.index("<eos_b>"), tokens.index("<eos_a>")
    # <eos_b> closes the last belief pair: the three gold pairs are found, the requested phone not yet
    assert cumulative[0, eos_b].item() == pytest.approx(tod_reward(TARGET.split(" <sos_a>")[0], GOLD))
    assert cumulative[0, eos_b].item() > cumulative[0, eos_b - 1].item()
    # the requested phone counts once the [inform] act slot is closed, by <eos_a> at the latest
    assert cumulative[0, eos_a].item() == pytest.approx(1.0)
    assert cumulative[0, : eos_b + 1].lt(1.0).all()
    # padding earns nothing; delta sums to the generation's reward, which the text agrees with
    assert cumulative[0, len(ids):].eq(0).all() and delta[0, len(ids):].eq(0).all()
    assert delta.sum().item() == pytest.approx(1.0) and final.item() == pytest.approx(1.0) == final_delta.item()
    assert response_pieces(tokenizer, response, mask)[0][-1] == ""
    # Ru and Rg are logged beside the trained reward: here every pair and the requested phone are found.
    assert {name: part.item() for name, part in earned.parts.items()} == pytest.approx(
        {"understanding": 1.0, "generation": 1.0, "tod": 1.0})


def test_reward_none_is_zero_but_its_parts_are_still_measured():
    tokenizer = build_tiny("tiny", TEXTS, MARKERS, vocab_size=120)[1]
    response = torch.tensor([tokenizer(TARGET, add_special_tokens=False).input_ids])
    mask = torch.ones_like(response)
    earned = task_rewards(tokenizer, response, mask, [GOLD], RewardConfig(type="none"), "delta", VOCABULARY)
    assert earned.per_token.abs().sum().item() == 0.0 and earned.final.item() == 0.0
    assert earned.parts["tod"].item() == pytest.approx(1.0)


def test_symmetric_penalty_charges_extra_slots():
    tokenizer = build_tiny("tiny", TEXTS, MARKERS, vocab_size=120)[1]
    padded = TARGET.replace("<eos_b>", "[taxi] destination the hotel <eos_b>", 1)
    response = torch.tensor([tokenizer(padded, add_special_tokens=False).input_ids])
    mask = torch.ones_like(response)
    printed = task_rewards(tokenizer, response, mask, [GOLD], RewardConfig(), "delta", VOCABULARY).final.item()
    symmetric = task_rewards(tokenizer, response, mask, [GOLD], RewardConfig(symmetric=True), "delta",
                             VOCABULARY).final.item()
    assert printed == pytest.approx(1.0) and symmetric < 1.0


def test_offer_slots_become_offered_only_where_the_gold_response_gives_them():
    target = "<sos_b> [hotel] area east <eos_b> <sos_r> how about [value_name] ? its phone is [value_phone] . <eos_r>"
    example = Example("SNG01", 3, "i need a hotel in the east", target, {"hotel": {"area": "east"}}, {"hotel": ["phone"]})
    assert gold_of(example, RewardConfig()).expected == {"phone"}
    offering = gold_of(example, RewardConfig(offer_slots=["name", "id", "reference"]))
    assert offering.offered == {"name"} and offering.expected == {"name", "phone"}
    assert tod_reward(target, offering) == 1.0
    assert tod_reward(target.replace("[value_name]", "it"), offering) < tod_reward(target.replace("[value_name]", "it"), gold_of(example, RewardConfig()))


def test_a_vocabulary_that_cannot_read_the_gold_states_stops_the_run():
    target = "<sos_b> [restaurants_2] location san jose restaurant_name sushi <eos_b> <sos_r> ok <eos_r>"
    state = {"restaurants_2": {"location": "san jose", "restaurant_name": "sushi"}}
    example = Example("1_00000", 0, "sushi in san jose", target, state, {})
    with pytest.raises(ValueError, match="reads 0 of the 2 belief pairs"):
        check_gold_states([example], VOCABULARY, "sgd split 'train'")


def test_sgd_gold_targets_earn_the_understanding_reward_with_the_readers_vocabulary():
    from conftest import require_data

    from todrl.data.sgd import iter_sgd
    from todrl.format import build_examples

    path = require_data("sgd")
    examples = [e for e in build_examples(list(itertools.islice(iter_sgd(path, "dev"), 5))) if e.belief_state]
    vocabulary = span_vocabulary("sgd", path)
    check_gold_states(examples, vocabulary, "sgd dev")
    with pytest.raises(ValueError, match="span grammar reads"):
        check_gold_states(examples, VOCABULARY, "sgd dev")
    config = RewardConfig(type="understanding")
    assert all(reward_parts(e.target, gold_of(e, config), config, vocabulary)["understanding"] == 1.0 for e in examples)
    assert sum(reward_parts(e.target, gold_of(e, config), config)["understanding"] for e in examples) < len(examples) / 2


def test_sampling_uses_no_deprecated_cache_argument(tiny):
    model, tokenizer = tiny
    query, mask = queries(tokenizer, left=not is_seq2seq(model))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample(StepDecoder(model, query, mask), 6, tokenizer.eos_token_id, tokenizer.pad_token_id, top_k=5)
    assert not [w for w in caught if "past_key_values" in str(w.message)], [str(w.message) for w in caught]



class EndAt:
    """An action mask allowing every token, except at row i's step ``ends[i]``, where only the end is allowed."""

    def __init__(self, ends: list[int], vocab: int, eos: int) -> None:
        self.ends, self.vocab, self.eos, self.step = torch.tensor(ends), vocab, eos, 0

    def __call__(self, last):
        allowed = torch.ones(len(self.ends), self.vocab, dtype=torch.bool)
        ending = self.ends == self.step
        allowed[ending] = False
        allowed[ending, self.eos] = True
        self.step += 1
        return allowed


class DroppingEndAt(EndAt):
    def select(self, rows):
        self.ends = self.ends[rows]


def test_dropping_finished_rows_samples_what_the_full_batch_samples(tiny):
    model, tokenizer = tiny
    query, query_mask = queries(tokenizer, left=not is_seq2seq(model))
    query, query_mask = query.repeat(3, 1), query_mask.repeat(3, 1)
    ends = [2, 5, 0, 9, 3, 5]
    runs, rows_left = {}, {}
    for kind in (DroppingEndAt, EndAt):  # a masker that cannot drop rows keeps the whole batch running
        decoder = StepDecoder(model, query, query_mask, keep_hidden=True)
        masker = kind(ends, len(tokenizer), tokenizer.eos_token_id)
        runs[kind] = sample(decoder, 8, tokenizer.eos_token_id, tokenizer.pad_token_id, top_k=20, masker=masker,
                            generator=torch.Generator().manual_seed(1))
        rows_left[kind] = decoder.query.shape[0]
    dropping, full = runs[DroppingEndAt], runs[EndAt]
    assert dropping.response_mask.sum(1).tolist() == [3, 6, 1, 8, 4, 6] and rows_left == {DroppingEndAt: 1, EndAt: 6}
    assert torch.equal(dropping.response, full.response) and torch.equal(dropping.action_mask, full.action_mask)
    real = dropping.response_mask.bool()
    for field in ("logprobs", "unmasked_logprobs", "hidden"):
        assert torch.allclose(getattr(dropping, field)[real], getattr(full, field)[real], atol=1e-5), field
    assert dropping.logprobs[~real].eq(0).all() and dropping.hidden[~real].eq(0).all()
    assert dropping.action_mask[~real].all()


def test_prepacked_frozen_weights_sample_what_the_plain_weights_sample(tiny):
    model, tokenizer = tiny
    frozen = copy.deepcopy(model).requires_grad_(False)  # an adapter's base: the weights prepacking may copy
    query, query_mask = queries(tokenizer, left=not is_seq2seq(model))
    runs = {}
    for prepack in (False, True):
        decoder = StepDecoder(frozen, query, query_mask, keep_hidden=True, prepack=prepack)
        runs[prepack] = sample(decoder, 8, tokenizer.eos_token_id, tokenizer.pad_token_id, top_k=20,
                               generator=torch.Generator().manual_seed(2))
    assert decoder.packed and not any("forward" in vars(module) for module in decoder.packed)  # restored after each step
    assert torch.equal(runs[True].response, runs[False].response)
    for field in ("logprobs", "unmasked_logprobs", "hidden"):
        assert torch.allclose(getattr(runs[True], field), getattr(runs[False], field), atol=1e-5), field
    # a weight changed in place (a full fine-tuning step, a re-synced snapshot) is packed again
    with torch.no_grad():
        frozen.get_output_embeddings().weight.mul_(-2.0)
    first = {prepack: StepDecoder(frozen, query, query_mask, prepack=prepack)(None) for prepack in (False, True)}
    assert torch.allclose(first[True], first[False], atol=1e-5)
    # trainable weights are never packed: they change at every update
    assert not StepDecoder(model, query, query_mask, prepack=True).packed
