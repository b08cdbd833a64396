import pytest
import torch

from todrl.checkpoint import atomic_directory, load_state, save_checkpoint
from todrl.format import clean_generation
from todrl.models import ModelLoadError, build_tiny, is_seq2seq, load_policy

TARGET = "<sos_b> [restaurant] food british area centre <eos_b> <sos_r> their phone is [value_phone] . <eos_r>"
TEXTS = ["i need a cheap restaurant in the centre of town please .", TARGET] * 20
TOKENS = ["<sos_b>", "<eos_b>", "<sos_r>", "<eos_r>", "[restaurant]", "[value_phone]"]


@pytest.mark.parametrize("preset", ["tiny", "tiny-llama"])
def test_tiny_presets_keep_markers_whole_and_decodable(preset):
    model, tokenizer = build_tiny(preset, TEXTS, TOKENS, vocab_size=120)
    assert is_seq2seq(model) == (preset == "tiny")
    ids = tokenizer(TARGET, add_special_tokens=False)["input_ids"]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    assert all(token in pieces for token in TOKENS)
    # markers are normal tokens: skip_special_tokens must not drop them
    assert clean_generation(tokenizer.decode(ids, skip_special_tokens=True)) == TARGET
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)


def test_checkpoint_loads_with_plain_transformers(tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    model, tokenizer = build_tiny("tiny", TEXTS, TOKENS, vocab_size=120)
    save_checkpoint(tmp_path / "ckpt", model, tokenizer, {"step": 3})
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "ckpt")
    assert torch.equal(loaded.shared.weight, model.shared.weight)
    reloaded, tok = load_policy(tmp_path / "ckpt")
    assert len(tok) == len(tokenizer) and load_state(tmp_path / "ckpt")[0] == {"step": 3}


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path):
    target = tmp_path / "last"
    with atomic_directory(target) as scratch:
        (scratch / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as scratch:
            (scratch / "weights").write_text("half")
            raise RuntimeError("killed")
    assert (target / "weights").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["last"]


MISSING_HUB_MODEL = "todrl-tests/no-such-model-4f2c9e"
"""A hub name that exists nowhere, so no cache a user's own runs filled can answer for it."""


def test_unknown_model_names_fail_with_a_clear_message(monkeypatch, tmp_path):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # fail at once instead of retrying
    with pytest.raises(ModelLoadError, match=f"{MISSING_HUB_MODEL}.*local path"):
        load_policy(MISSING_HUB_MODEL)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a loadable model directory"):
        load_policy(tmp_path / "empty")


def test_saving_a_checkpoint_prints_no_progress_bar_of_its_own(tmp_path, capfd):
    model, tokenizer = build_tiny("tiny", ["a b c"] * 4, [], vocab_size=60)
    save_checkpoint(tmp_path / "last", model, tokenizer, {"step": 1})
    assert "Writing model shards" not in capfd.readouterr().err
    assert load_state(tmp_path / "last")[0] == {"step": 1}
