"""The instruction format: sub-task examples in the span grammar, chained back into end-to-end predictions,
each sub-task rewarded by its own reward, and the whole loop trained, tuned and scored on the tiny presets."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import require_data
from rewards import Gold, RewardConfig, parse_target

from todrl.data import load_dialogues, span_vocabulary
from todrl.data.db import MultiWozDB
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.evaluate.multiwoz import StandardEvaluator
from todrl.evaluate.generate import read_predictions
from todrl.format import FormatConfig, build_examples, format_tokens
from todrl.instruct import InstructFormat, chain_targets, checkpoint_format, turn_examples
from todrl.models import build_tiny
from todrl.rl.task_reward import task_rewards

VOCABULARY = span_vocabulary("multiwoz21")
INSTRUCT = FormatConfig(type="instruct")


@pytest.fixture(scope="module")
def test_split():
    return load_multiwoz(SAMPLE_PATH, "test")


def test_each_turn_gives_three_subtasks_whose_targets_read_back_as_the_gold(test_split):
    dialogue = test_split[0]
    examples = turn_examples(INSTRUCT, [dialogue], "multiwoz21", None, VOCABULARY)
    assert [e.subtask for e in examples[:3]] == ["state", "policy", "response"]
    assert len(examples) == 3 * len(dialogue.turns)
    for example in examples:
        turn = dialogue.turns[example.turn]
        read = parse_target(example.target, VOCABULARY)
        if example.subtask == "state":
            assert read.belief_state == {d: dict(p) for d, p in turn.belief_state.items() if any(p.values())}
            assert "instruction: track the dialogue state" in example.source
        elif example.subtask == "policy":
            assert read.dialogue_act and "database: " in example.source
        else:
            assert read.response == " ".join(turn.system_delex.split()) and "act: " in example.source
    listed = next(e.source for e in examples if e.subtask == "policy" and "[hotel]" in e.source)
    assert "pricerange (price budget of the hotel)" in listed  # MultiWOZ 2.2's description, todrl's slot name


def test_mix_keeps_a_seeded_share_of_each_subtask(test_split):
    only_states = turn_examples(FormatConfig(type="instruct", mix=[1, 0, 0]), test_split, "multiwoz21", None, VOCABULARY)
    assert {e.subtask for e in only_states} == {"state"} and len(only_states) == sum(len(d.turns) for d in test_split)
    half = turn_examples(FormatConfig(type="instruct", mix=[2, 1, 2]), test_split, "multiwoz21", None, VOCABULARY, seed=3)
    policies = sum(e.subtask == "policy" for e in half)
    assert 0.3 < policies / len(only_states) < 0.7
    assert half == turn_examples(FormatConfig(type="instruct", mix=[2, 1, 2]), test_split, "multiwoz21", None,
                                 VOCABULARY, seed=3)
    with pytest.raises(ValueError, match="mix must be three weights"):
        FormatConfig(type="instruct", mix=[0, 0, 0])


def test_chaining_gold_subtasks_gives_the_end_to_end_gold_predictions(test_split):
    """With a policy that answers each sub-task with its gold span, the chain writes the e2e gold targets."""
    form = InstructFormat.of("multiwoz21", None, VOCABULARY, test_split)
    gold = {e.source: e.target for e in form.examples(test_split, {"state": 1, "policy": 1, "response": 1}, 0)}
    asked = []

    def oracle(sources):
        asked.append(len(sources))
        return [gold[source] for source in sources]

    texts = chain_targets(oracle, form, test_split, VOCABULARY)
    turns = sum(len(d.turns) for d in test_split)
    assert asked == [turns] * 3  # each sub-task decoded for every turn in one call
    assert [parse_target(t, VOCABULARY) for t in texts] == [parse_target(e.target, VOCABULARY)
                                                             for e in build_examples(test_split)]
    result = StandardEvaluator(test_split, MultiWozDB(SAMPLE_PATH / "db")).evaluate(read_predictions(test_split, texts, VOCABULARY))
    assert result.bleu == pytest.approx(100.0)


def test_each_subtask_span_earns_its_own_reward(test_split):
    from todrl.instruct import subtask_config

    texts = [t for e in build_examples(test_split) for t in (e.source, e.target)]
    tokenizer = build_tiny("tiny", texts, format_tokens(texts), vocab_size=400)[1]
    examples = [e for e in turn_examples(INSTRUCT, test_split, "multiwoz21", None, VOCABULARY)
                if e.belief_state and e.requested and e.subtask != "policy"][:2]
    assert {e.subtask for e in examples} == {"state", "response"}
    rows = [tokenizer(e.target, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for e in examples]
    width = max(map(len, rows))
    response = torch.tensor([r + [tokenizer.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    golds = [Gold(e.belief_state, e.requested) for e in examples]
    tod = RewardConfig(type="tod")
    earned = task_rewards(tokenizer, response, mask, golds, [subtask_config(tod, e.subtask) for e in examples], "delta",
                          VOCABULARY)
    for index, example in enumerate(examples):
        own = "understanding" if example.subtask == "state" else "generation"
        assert earned.final[index].item() == pytest.approx(earned.parts[own][index].item())
    assert earned.final[examples.index(next(e for e in examples if e.subtask == "state"))].item() == pytest.approx(1.0)


def test_a_chat_model_reads_its_input_through_its_chat_template(test_split):
    from todrl.batching import encode_source

    texts = [t for e in build_examples(test_split) for t in (e.source, e.target)]
    tokenizer = build_tiny("tiny-llama", texts, format_tokens(texts), vocab_size=400)[1]
    tokenizer.add_tokens(["<|user|>", "<|end|>", "<|assistant|>"], special_tokens=True)
    tokenizer.chat_template = ("{% for m in messages %}<|user|>{{ m['content'] }}<|end|>{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    source = turn_examples(INSTRUCT, test_split[:1], "multiwoz21", None, VOCABULARY)[0].source
    whole = tokenizer.decode(encode_source(tokenizer, source, seq2seq=False, max_length=1024))
    assert whole.startswith("<|user|>") and whole.endswith("<|end|><|assistant|>") and "track the dialogue state" in whole
    cut = encode_source(tokenizer, source, seq2seq=False, max_length=32)
    assert len(cut) == 32 and tokenizer.decode(cut).startswith("<|user|>") and tokenizer.decode(cut).endswith("<|assistant|>")


@pytest.mark.slow
def test_incar_has_no_policy_subtask_and_describes_its_kb_fields():
    dialogues = load_dialogues("incar", require_data("kvret"), "train")[:3]
    examples = turn_examples(INSTRUCT, dialogues, "incar", require_data("kvret"), span_vocabulary("incar"))
    assert {e.subtask for e in examples} == {"state", "response"}
    assert any("poi_type (kind of place to drive to)" in e.source for e in examples if "[navigate]" in e.source)


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
@pytest.mark.parametrize(("model", "dataset"), [("tiny", "multiwoz21"), ("tiny-llama", "multiwoz21"), ("tiny", "incar")])
def test_sft_then_rl_then_evaluate_in_the_instruct_format(tmp_path, capsys, model, dataset):
    from accelerate.state import AcceleratorState

    from todrl.evaluate.cli import main as evaluate
    from todrl.rl.config import RLConfig
    from todrl.rl.trainer import train as rl
    from todrl.sft import SFTConfig, train as sft

    corpus = dict(dataset=dataset, data_dir=str(require_data("kvret")), dev_split="dev", dev_dialogues=2,
                  train_fraction=0.02) if dataset == "incar" else {}
    sft(SFTConfig(model=model, format=INSTRUCT, output_dir=str(tmp_path / "sft"), max_steps=4, batch_size=8,
                  vocab_size=400, max_target_length=48, **corpus))
    assert checkpoint_format(tmp_path / "sft" / "best") == "instruct"
    from todrl.serve.policy import DialoguePolicy

    with pytest.raises(ValueError, match="the chat server speaks the end-to-end"):
        DialoguePolicy(tmp_path / "sft")
    AcceleratorState._reset_state(reset_partial_state=True)
    with pytest.raises(ValueError, match="trained in the instruct format; pass --format instruct"):
        rl(RLConfig(model=str(tmp_path / "sft"), output_dir=str(tmp_path / "e2e"), episodes=8, **corpus))
    AcceleratorState._reset_state(reset_partial_state=True)
    summary = rl(RLConfig(model=str(tmp_path / "sft"), format=INSTRUCT, output_dir=str(tmp_path / "rl"), episodes=16,
                          eval_dialogues=1, max_new_tokens=24, reward="tod", **corpus))
    rows = [json.loads(line) for line in (tmp_path / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert summary["iterations"] == 2 and all("env/reward_understanding" in r for r in rows if r["iteration"])
    capsys.readouterr()
    data_dir = corpus.get("data_dir", str(SAMPLE_PATH))
    assert evaluate(["--checkpoint", str(tmp_path / "rl" / "last"), "--dataset", dataset, "--data-dir", data_dir,
                     "--limit", "1", "--max-new-tokens", "24", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["coverage"]["dialogues"] == 1 and "dst" in result
