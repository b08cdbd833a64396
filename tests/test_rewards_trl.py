"""The GRPOTrainer adapter, called through TRL's own reward code path."""

from __future__ import annotations

import json

import pytest

from rewards import RewardConfig, TODRewardFunction
from rewards.spans import SPAN_TOKENS

STATE = json.dumps({"taxi": {"leave": "17:15"}})
REQUESTS = json.dumps({"taxi": ["phone"]})
ROW = {"prompt": "book a taxi please", "belief_state": STATE, "requested_slots": REQUESTS}
GOLD_TARGET = "<sos_b> [taxi] leave 17:15 <eos_b> <sos_a> [taxi] [inform] phone <eos_a> <sos_r> [value_phone] <eos_r>"


@pytest.fixture(scope="module")
def trainer(tmp_path_factory):
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    words = "<pad> <eos> <unk> [taxi] [inform] leave 17:15 phone [value_phone] book a please".split()
    backend = Tokenizer(models.WordLevel({word: index for index, word in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.add_tokens(list(SPAN_TOKENS))  # normal tokens: decoding with skip_special_tokens keeps them
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, pad_token_id=0, bos_token_id=1, eos_token_id=1,
    )  # fmt: skip
    dataset = Dataset.from_list([ROW] * 4)
    args = GRPOConfig(
        output_dir=str(tmp_path_factory.mktemp("grpo")), per_device_train_batch_size=4, num_generations=4,
        max_completion_length=8, max_steps=1, report_to=[], use_cpu=True, logging_steps=1, save_strategy="no",
    )  # fmt: skip
    trainer = GRPOTrainer(
        model=LlamaForCausalLM(config), reward_funcs=[TODRewardFunction("tod")], args=args,
        train_dataset=dataset, processing_class=tokenizer,
    )  # fmt: skip
    trainer.train()
    return trainer


@pytest.mark.slow
def test_grpo_trainer_runs_a_step_with_the_reward_and_logs_it(trainer):
    logged = trainer.state.log_history[0]
    assert "rewards/tod_reward/mean" in logged
    assert 0.0 <= logged["rewards/tod_reward/mean"] <= 1.0


@pytest.mark.slow
def test_grpo_reward_computation_scores_gold_partial_and_conversational_completions(trainer):
    rows = [ROW] * 3
    completions = [GOLD_TARGET, "<sos_b> [taxi] leave 17:15 <eos_b>", ""]
    rewards = trainer._calculate_rewards(rows, [row["prompt"] for row in rows], completions, [[1]] * 3)
    assert rewards[:, 0].tolist() == pytest.approx([1.0, 0.5, 0.0])

    conversational = [[{"role": "assistant", "content": GOLD_TARGET}], [{"role": "assistant", "content": [
        {"type": "text", "text": "<sos_b> [taxi] leave 17:15 "}, {"type": "text", "text": "<eos_b>"}]}]]  # fmt: skip
    prompts = [[{"role": "user", "content": "book a taxi please"}]] * 2
    rewards = trainer._calculate_rewards(rows[:2], prompts, conversational, [[1]] * 2)
    assert rewards[:, 0].tolist() == pytest.approx([1.0, 0.5])


def test_adapter_names_itself_and_reports_missing_or_misaligned_columns():
    reward = TODRewardFunction(RewardConfig(type="generation", beta=2.0))
    assert reward.__name__ == "generation_reward"
    with pytest.raises(ValueError, match="no column 'requested_slots'.*'belief_state'"):
        reward(prompts=["p"], completions=["c"], belief_state=[STATE], trainer_state=None)
    with pytest.raises(ValueError, match="column 'belief_state' has 2 rows for 1 completions"):
        reward(prompts=["p"], completions=["c"], belief_state=[STATE] * 2, requested_slots=[REQUESTS])
    with pytest.raises(ValueError, match="generation_reward: dataset row 0: requested_slots is not valid JSON"):
        reward(prompts=["p"], completions=["c"], belief_state=[STATE], requested_slots=["{oops"])
    with pytest.raises(TypeError, match="completion 0: expected a string or a list of messages"):
        reward(prompts=["p"], completions=[3], belief_state=[STATE], requested_slots=[REQUESTS])


def test_adapter_takes_dict_columns_and_custom_names():
    reward = TODRewardFunction("understanding", state_column="state", requests_column="asks")
    scores = reward(
        prompts=["p", "p"],
        completions=["<sos_b> [taxi] leave 17:15 <eos_b>", "<sos_b> [taxi] leave 17:30 <eos_b>"],
        state=[{"taxi": {"leave": "17:15"}}] * 2,
        asks=[{}, {}],
    )
    assert scores == [1.0, 0.0]


def test_adapter_offers_the_configured_slots_that_each_gold_response_gives():
    text = "<sos_r> [value_phone] <eos_r>"
    columns = {"belief_state": ["{}"], "requested_slots": [REQUESTS], "response": ["it is [value_name] ."]}
    assert TODRewardFunction("generation")(completions=[text], **columns) == [1.0]
    offering = TODRewardFunction(RewardConfig(type="generation", offer_slots={"name", "id"}), response_column="response")
    assert offering(completions=[text], **columns) == [pytest.approx(0.5 * 2.718281828459045 ** -0.5)]
    assert offering(completions=["<sos_r> [value_name] , [value_phone] <eos_r>"], **columns) == [1.0]
    with pytest.raises(ValueError, match="no column 'response'"):
        offering(completions=[text], belief_state=["{}"], requested_slots=[REQUESTS])
    with pytest.raises(ValueError, match="offer_slots needs response_column"):
        TODRewardFunction(RewardConfig(offer_slots={"name"}))
