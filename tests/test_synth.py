"""Synthetic dialogues (`python -m todrl.synth`): the offline rules/templates corpus validates, resumes after a kill
without duplicates, reads back as `Dialogue` records and trains; the LLM paths against todrl's own served tiny
policy fail validation, counted by reason, without crashing."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from todrl.data import load_dialogues
from todrl.data.db import MultiWozDB
from todrl.data.errors import DataError
from todrl.data.multiwoz import SAMPLE_PATH
from todrl.data.normalize import INFORMABLE_SLOTS
from todrl.data.records import Turn
from todrl.lexicalize import PLACEHOLDER
from todrl.synth.cli import main
from todrl.synth.corpus import ACCEPTED, REJECTED, read_records
from todrl.synth.flow import Reply, Step
from todrl.synth.scenario import Ontology
from todrl.synth.validate import REASONS, check_flow, check_turn

ONTOLOGY_DB = MultiWozDB(SAMPLE_PATH / "db")
ONTOLOGY = Ontology.read(ONTOLOGY_DB, SAMPLE_PATH / "schema_2.2.json")


def schema_corpus(folder: Path, dialogues: int = 10, *extra: str) -> int:
    return main(["schema", "--planner", "rules", "--realizer", "templates", "--output", str(folder),
                 "--dialogues", str(dialogues), *extra])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("synthetic")
    assert schema_corpus(folder) == 0
    return folder


def test_rules_and_templates_corpus_validates(corpus: Path) -> None:
    records = [r for _, r in read_records(corpus / ACCEPTED)]
    rejected = [r for _, r in read_records(corpus / REJECTED)] if (corpus / REJECTED).exists() else []
    assert len(records) + len(rejected) == 10 and len(records) >= 8
    assert {r["level"] for r in records} == {1, 2, 3}
    for record in records:
        assert record["provenance"] | {"model": None} == {"planner": "rules", "realizer": "templates", "model": None,
                                                          "prompt_version": "synth-v1", "retries": 3}
        steps = [Step(**turn["flow"]) for turn in record["turns"]]
        assert check_flow(steps, ONTOLOGY, ONTOLOGY_DB) == []
        previous: dict[str, dict[str, str]] = {}
        for turn in record["turns"]:
            state = turn["belief_state"]
            assert all(slot in state.get(d, {}) for d, slots in previous.items() for slot in slots)  # only grows
            assert all(s in INFORMABLE_SLOTS[d] and ONTOLOGY.allows(d, s, v) for d, slots in state.items()
                       for s, v in slots.items())
            informed = {s for acts in turn["dialogue_act"].values() for s in acts.get("inform", [])}
            assert all(s in informed for slots in turn["requested_slots"].values() for s in slots)
            assert not PLACEHOLDER.search(turn["system"])  # every placeholder was filled from the database
            previous = state
        assert record["turns"][-1]["dialogue_act"] == {"general": {"bye": []}}
    dialogues = load_dialogues("synthetic", corpus, "train")
    assert [d.id for d in dialogues] == sorted(r["id"] for r in records)
    assert dialogues[0].dataset == "synthetic" and dialogues[0].turns[0].belief_state


def test_each_validator_names_what_it_catches() -> None:
    restaurant = ONTOLOGY_DB.query("restaurant", {})[0]
    assert check_flow([Step("inform", "restaurant", {"food": restaurant["food"]})], ONTOLOGY, ONTOLOGY_DB) == []
    assert check_flow([Step("inform", "restaurant", {"colour": "red"})], ONTOLOGY, ONTOLOGY_DB) == ["slot_not_in_schema"]
    assert check_flow([Step("inform", "restaurant", {"food": "martian"})], ONTOLOGY, ONTOLOGY_DB) == ["value_not_in_ontology"]
    assert check_flow([Step("inform", "restaurant", {"food": restaurant["food"]}),
                       Step("inform", "restaurant", {"name": "pizza hut fen ditton", "food": "thai"})],
                      ONTOLOGY, ONTOLOGY_DB) == ["unsatisfiable"]

    previous = {"restaurant": {"area": "centre"}}
    step = Step("request", "restaurant", {"food": "thai"}, ["phone"])
    reply = Reply({"restaurant": {"inform": ["phone"]}}, {"phone": "01223323737"})
    good = Turn(user="i want thai food . what is the phone ?", system="the phone is 01223323737 .",
                system_delex="the phone is [value_phone] .",
                belief_state={"restaurant": {"area": "centre", "food": "thai"}},
                dialogue_act=reply.act, requested_slots={"restaurant": ["phone"]})
    assert check_turn(good, previous, [step], reply) == []
    broken = {
        "state_not_from_flow": dict(belief_state={"restaurant": {"food": "thai"}}),
        "request_unanswered": dict(requested_slots={"restaurant": ["phone", "postcode"]}),
        "value_not_in_utterance": dict(user="what is the phone ?"),
        "delex_round_trip": dict(system_delex="the phone is [value_postcode] ."),
        "slot_not_in_schema": dict(dialogue_act={"restaurant": {"inform": ["phone"], "shout": []}}),
    }
    for reason, change in broken.items():
        assert check_turn(replace(good, **change), previous, [step], reply) == [reason], reason
    leaked = replace(good, system="the phone is 01223323737 .", system_delex="the phone is 01223323737 .")
    assert check_turn(leaked, previous, [step], reply) == ["delex_round_trip"]  # a value left in the delexicalized text


def test_resume_after_a_kill_repeats_nothing_and_matches_an_uninterrupted_run(corpus: Path, tmp_path: Path) -> None:
    folder = tmp_path / "killed"
    assert schema_corpus(folder, 6) == 0
    accepted = folder / ACCEPTED
    data = accepted.read_bytes()
    accepted.write_bytes(data[: len(data) - 40])  # killed while writing the last line
    with pytest.raises(DataError, match=rf"{accepted}: line \d+: not JSON"):
        load_dialogues("synthetic", folder, "train")
    assert schema_corpus(folder, 10) == 0
    ids = [r["id"] for _, r in read_records(accepted)]
    assert len(ids) == len(set(ids))
    assert sorted(accepted.read_text().splitlines()) == sorted((corpus / ACCEPTED).read_text().splitlines())


def test_reader_errors_name_the_file_and_line(corpus: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    lines = (corpus / ACCEPTED).read_text().splitlines()
    bad.write_text(lines[0] + "\n" + json.dumps({"id": "x", "goal": {}, "turns": [{"user": "hi"}]}) + "\n")
    with pytest.raises(DataError, match=rf"{bad}: dialogue x: line 2: malformed dialogue"):
        load_dialogues("synthetic", bad, "train")
    with pytest.raises(ValueError, match="one split, train"):
        load_dialogues("synthetic", corpus, "val")


@pytest.mark.slow
def test_sft_trains_on_synthetic_alone_and_beside_the_sample_then_stage_two_starts_from_stage_one(
        corpus: Path, tmp_path: Path, fresh_accelerator_state) -> None:
    import torch
    from accelerate.state import AcceleratorState
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from todrl.sft import SFTConfig, train

    tiny = dict(max_steps=2, batch_size=4, vocab_size=400, max_target_length=48)
    alone = train(SFTConfig(output_dir=str(tmp_path / "alone"), dataset="synthetic", data_dir=str(corpus),
                            dev_split="train", dev_dialogues=2, **tiny))
    assert alone["best_checkpoint"]
    AcceleratorState._reset_state(reset_partial_state=True)
    stage1 = tmp_path / "stage1"
    train(SFTConfig(output_dir=str(stage1), extra_train=[str(corpus)], **tiny))
    AcceleratorState._reset_state(reset_partial_state=True)
    stage2 = tmp_path / "stage2"
    train(SFTConfig(output_dir=str(stage2), model=str(stage1 / "best"), lr=1e-12, **tiny))
    start = AutoModelForSeq2SeqLM.from_pretrained(stage1 / "best").state_dict()
    after = AutoModelForSeq2SeqLM.from_pretrained(stage2 / "last").state_dict()
    assert start.keys() == after.keys()
    assert all(torch.allclose(start[k], after[k], atol=1e-6) for k in start)
    # a fresh tiny preset would have trained its tokenizer on the real texts alone
    assert AutoTokenizer.from_pretrained(stage2 / "last").get_vocab() == AutoTokenizer.from_pretrained(stage1 / "best").get_vocab()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["schema", "--planner", "llm", "--realizer", "llm"],
                                     ["schema", "--planner", "rules", "--realizer", "llm"],
                                     ["simulate", "--max-turns", "2"]])
def test_llm_paths_count_failures_by_reason(served, command: list[str], tmp_path: Path, capsys) -> None:
    base, model = served
    argv = [*command, "--output", str(tmp_path), "--dialogues", "2", "--retries", "1", "--max-tokens", "24",
            "--llm-base-url", base, "--llm-model", model]
    assert main(argv) == 0
    out = capsys.readouterr().out
    rejected = [r for _, r in read_records(tmp_path / REJECTED)]
    assert len(rejected) == 2 and all(r["reason"] in REASONS for r in rejected)
    assert all(r["provenance"]["model"] == model and sum(r["failures"].values()) >= 2 for r in rejected)
    assert "2 dialogues: 0 accepted (0%), 2 dropped" in out and "LLM: " in out
    assert main(argv) == 0  # a rerun finds both done and asks nothing
    assert "LLM: 0 requests" in capsys.readouterr().out


def test_the_first_help_lists_every_command_option_with_its_default(capsys):
    from todrl.synth.cli import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for shown in ("--planner {rules,llm}", "(default: rules)", "--max-turns", "(default: 12)", "(default: 0.7)"):
        assert shown in text
