"""Step-by-step state tracking (`--task dst-cot`): stage-1 targets derived from gold state changes or read from a
synthetic flow, both stages in one mixture, the chain scored by the DST evaluator, and the loop trained end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rewards import parse_target

from todrl.cot import EOS_F, SOS_F, chain_states, dialogue_intents, formal_text, read_formal
from todrl.data import load_dialogues
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.data.records import BeliefState, Dialogue, Turn
from todrl.evaluate.dst import DstEvaluator, MultiWozDstEvaluator, multiwoz_spelling
from todrl.evaluate.generate import read_predictions
from todrl.evaluate.predictions import PredictedTurn
from todrl.format import build_examples, format_tokens
from todrl.synth.cli import main as synth


@pytest.fixture(scope="module")
def sample() -> list[Dialogue]:
    return load_multiwoz(SAMPLE_PATH, "test")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> list[Dialogue]:
    folder = tmp_path_factory.mktemp("synthetic")
    assert synth(["schema", "--planner", "rules", "--realizer", "templates", "--output", str(folder),
                  "--dialogues", "6"]) == 0
    return load_dialogues("synthetic", folder, "train")


def turn(state: BeliefState, requested: dict[str, list[str]] | None = None) -> Turn:
    return Turn("u", "s", "s", state, {}, requested_slots=requested or {})


def test_stage_one_targets_follow_the_gold_state_changes(sample: list[Dialogue]) -> None:
    for dialogue in sample:
        previous: BeliefState = {}
        for index, (gold, intent) in enumerate(zip(dialogue.turns, dialogue_intents(dialogue), strict=True)):
            new = {d: {s: v for s, v in pairs.items() if previous.get(d, {}).get(s) != v}
                   for d, pairs in gold.belief_state.items()}
            assert intent.slot_values == {d: pairs for d, pairs in new.items() if pairs}
            changed = any(s not in gold.belief_state.get(d, {}) or gold.belief_state[d][s] != v
                          for d, pairs in previous.items() for s, v in pairs.items())
            if changed:
                assert intent.intention == "update"
            elif intent.slot_values:
                assert intent.intention in ("inform", "book")
            else:
                last = index == len(dialogue.turns) - 1
                assert intent.intention == ("request" if any(gold.requested_slots.values()) else "bye" if last else "chat")
            assert read_formal(formal_text(intent)) == intent
            previous = gold.belief_state


def test_the_rule_on_hand_made_turns() -> None:
    dialogue = Dialogue("d", {}, [
        turn({"hotel": {"area": "east"}}),
        turn({"hotel": {"area": "east", "people": "2", "stay": "3"}}),
        turn({"hotel": {"area": "west", "people": "2"}}, {"hotel": ["phone"]}),
        turn({"hotel": {"area": "west", "people": "2"}}, {"hotel": ["phone"]}),
        turn({"hotel": {"area": "west", "people": "2"}}),
        turn({"hotel": {"area": "west", "people": "2"}}),
    ])
    assert [formal_text(i) for i in dialogue_intents(dialogue)] == [
        "<sos_f> [inform] [hotel] area east <eos_f> the user gives hotel area",
        "<sos_f> [book] [hotel] people 2 stay 3 <eos_f> the user gives hotel people, stay",
        "<sos_f> [update] [hotel] area west <eos_f> the user changes hotel area; drops hotel stay; asks for hotel phone",
        "<sos_f> [request] <eos_f> the user asks for hotel phone",
        "<sos_f> [chat] <eos_f> the state does not change",
        "<sos_f> [bye] <eos_f> the state does not change",
    ]


def test_synthetic_targets_come_from_the_flow(synthetic: list[Dialogue]) -> None:
    assert synthetic
    for dialogue in synthetic:
        assert len(dialogue.intents) == len(dialogue.turns)
        examples = build_examples([dialogue], task="dst-cot")
        assert [e.subtask for e in examples] == ["formal", "state"] * len(dialogue.turns)
        for intent, stage1 in zip(dialogue.intents, examples[::2]):
            assert stage1.target == formal_text(intent) and intent.rationale in stage1.target
        assert dialogue.intents[-1].intention == "bye"
        assert any(i.intention == "inform" and i.slot_values for i in dialogue.intents)


def test_markers_are_tokens_and_invisible_to_the_span_reader(sample: list[Dialogue]) -> None:
    examples = build_examples(sample[:2], task="dst-cot")
    assert {SOS_F, EOS_F, "[inform]"} <= set(format_tokens(t for e in examples for t in (e.source, e.target)))
    stage1, stage2 = examples[0], examples[1]
    assert parse_target(stage1.target) == parse_target("")
    assert stage2.source.endswith(" : " + stage1.target) and stage2.target.startswith("<sos_b>")
    assert parse_target(stage2.source).belief_state == {}  # contexts hold no span markers


def oracle_chain(dialogues: list[Dialogue]) -> tuple[list[str], list[int]]:
    """Chain the stages with a "model" that returns each source's gold target; also the batch sizes it was asked."""
    by_source = {e.source: e.target for e in build_examples(dialogues, task="dst-cot")}
    calls: list[int] = []

    def oracle(sources: list[str]) -> list[str]:
        calls.append(len(sources))
        return [by_source[s] for s in sources]

    return chain_states(oracle, dialogues), calls


def test_oracle_chain_gives_the_gold_states(sample: list[Dialogue], synthetic: list[Dialogue]) -> None:
    texts, calls = oracle_chain(sample)
    turns = sum(len(d.turns) for d in sample)
    assert calls == [turns, turns]  # every stage 1, then every stage 2
    predictions = read_predictions(sample, texts, None)
    assert [[t.state for t in predictions[d.id]] for d in sample] == [[t.belief_state for t in d.turns] for d in sample]
    gold = {d.id: [PredictedTurn("", t.belief_state) for t in d.turns] for d in sample}
    result, of_gold = (MultiWozDstEvaluator(sample).evaluate(p) for p in (predictions, gold))
    assert result.jga_exact == 100.0  # the standard JGA drops gold "dontcare", so the gold states themselves score less
    assert result.jga == of_gold.jga and result.slot_recall == 100.0
    texts, _ = oracle_chain(synthetic)
    result = DstEvaluator(synthetic, multiwoz_spelling).evaluate(read_predictions(synthetic, texts, None))  # its grammar
    assert result.joint_goal_accuracy == 100.0 and result.slot_accuracy == 100.0


@pytest.mark.parametrize("task", ["dst", "dst-cot"])
def test_predicting_reads_each_task_from_its_own_sources(sample: list[Dialogue], task: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    import todrl.evaluate.generate as generate

    by_source = {e.source: e.target for e in build_examples(sample, task=task)}
    monkeypatch.setattr(generate, "generate_texts", lambda model, tokenizer, sources, **_: [by_source[s] for s in sources])
    predictions, texts = generate.predict_dialogues(None, None, sample, None, shortest_first=True, task=task)
    assert [[t.state for t in predictions[d.id]] for d in sample] == [[t.belief_state for t in d.turns] for d in sample]
    assert all(text.startswith("<sos_b>") for text in texts)


@pytest.mark.slow
@pytest.mark.usefixtures("fresh_accelerator_state")
@pytest.mark.parametrize("task", ["dst", "dst-cot"])
def test_sft_then_evaluate_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str], task: str) -> None:
    from todrl.evaluate.cli import main as evaluate
    from todrl.instruct import checkpoint_task
    from todrl.sft import SFTConfig, train

    train(SFTConfig(task=task, output_dir=str(tmp_path / "sft"), max_steps=3, batch_size=8, vocab_size=400,
                    max_target_length=48))
    assert checkpoint_task(tmp_path / "sft" / "best") == task
    capsys.readouterr()
    output = tmp_path / "predictions.json"
    assert evaluate(["--checkpoint", str(tmp_path / "sft" / "best"), "--data-dir", str(SAMPLE_PATH), "--limit", "1",
                     "--max-new-tokens", "16", "--output", str(output), "--no-cache", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    turns = len(load_multiwoz(SAMPLE_PATH, "test")[0].turns)
    assert result["dst"]["turns"] == turns and 0 <= result["dst"]["jga"] <= 100
    assert len(next(iter(json.loads(output.read_text()).values()))) == turns
    from todrl.rl.build import build_policy
    from todrl.rl.config import RLConfig

    with pytest.raises(ValueError, match=f"trained for task {task}; RL tunes end-to-end"):
        build_policy(RLConfig(model=str(tmp_path / "sft")), tmp_path / "rl", 1, None)
