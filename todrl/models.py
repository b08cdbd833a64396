"""Policies: load any seq2seq or causal model by name or path, or build a tiny one offline.

The format's markers (`<sos_b>`, `[restaurant]`, `[value_phone]`, ...) are added
as *normal* tokens: special tokens would be deleted by
`decode(skip_special_tokens=True)`, and the rewards and evaluators must see them.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

TINY_PRESETS = ("tiny", "tiny-llama", "small")
"""Models built from config with a tokenizer trained on the training texts; no download."""

_TOKENIZER_SPECIALS = ["<pad>", "</s>", "<unk>", "<s>"]


DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
"""`--precision`: the dtype of a policy's weights and activations."""


class ModelLoadError(RuntimeError):
    pass


def set_precision(model: PreTrainedModel, precision: str) -> PreTrainedModel:
    """The policy's weights in `precision`; call before adding an adapter, which PEFT then keeps in float32.

    Log-probabilities, ratios, KL, advantages and the value head are computed in float32 whatever this is.
    T5 is refused in fp16: its feed-forward activations overflow float16's range (the known inf/NaN of T5 in
    half precision); bf16 has float32's range.
    """
    if precision == "fp16" and getattr(model.config, "model_type", "") in ("t5", "mt5", "umt5"):
        raise ValueError(f"precision fp16: {model.config.model_type} overflows in float16 (inf/NaN activations); use bf16")
    return model.to(DTYPES[precision])


def check_quantize(quantize: str, adapter_type: str) -> None:
    """Quantized bases train adapters only: their own weights cannot take gradient steps."""
    if quantize != "none" and adapter_type == "full":
        raise ValueError(f"quantize {quantize} needs an adapter (lora, adalora or sucg): a quantized base is frozen")


def load_quantized(base: str | Path, quantize: str, precision: str):
    """A saved base reloaded with its linear layers quantized by bitsandbytes (QLoRA's NF4 for 4bit, LLM.int8 for
    8bit), computing in `precision`, ready for an adapter: the KL reference stays this base with the adapter off."""
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    compute = DTYPES["bf16" if precision == "bf16" else "fp32"]
    settings = (BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute)
                if quantize == "4bit" else BitsAndBytesConfig(load_in_8bit=True))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, tokenizer = load_policy(base, quantization_config=settings, device_map=device)
    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=False), tokenizer


def enable_gradient_checkpointing(model: PreTrainedModel) -> None:
    """Recompute activations in the backward pass instead of keeping them; non-reentrant, so frozen inputs of an
    adapter model need no `enable_input_require_grads`."""
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False


def is_seq2seq(model: PreTrainedModel) -> bool:
    config = getattr(model, "config", None)
    return bool(getattr(config, "is_encoder_decoder", False))


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2000, protected: Iterable[str] = ()) -> PreTrainedTokenizerFast:
    """A sentencepiece-style (metaspace) BPE tokenizer learned from `texts`, offline.

    `protected` tokens are removed from the training texts because they are added
    whole afterwards; learning pieces for them would only waste vocabulary.
    """
    protected = sorted(set(protected), key=len, reverse=True)

    def cleaned() -> Iterable[str]:
        for text in texts:
            for token in protected:
                text = text.replace(token, " ")
            yield text

    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=_TOKENIZER_SPECIALS, show_progress=False)
    tokenizer.train_from_iterator(cleaned(), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>", model_max_length=1024
    )


def _tiny_model(preset: str, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    vocab = len(tokenizer)
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    if preset in ("tiny", "small"):
        width = {"tiny": dict(d_model=128, d_ff=256, num_layers=2, num_heads=4, d_kv=32),
                 "small": dict(d_model=512, d_ff=1024, num_layers=6, num_heads=8, d_kv=64)}[preset]
        config = T5Config(vocab_size=vocab, feed_forward_proj="gated-gelu", tie_word_embeddings=True,
                          decoder_start_token_id=tokenizer.pad_token_id, dropout_rate=0.1, **width, **ids)
        return T5ForConditionalGeneration(config)
    config = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, max_position_embeddings=1024, bos_token_id=tokenizer.bos_token_id, **ids)
    return LlamaForCausalLM(config)


def _as_added(tokens: Iterable[str]) -> list[AddedToken]:
    """Markers absorb the spaces around them, saving a lone-space token per marker.

    The price is that `decode` glues markers to their neighbours; `format.clean_generation` restores the spaces.
    """
    return [AddedToken(t, lstrip=True, rstrip=True, normalized=False, special=False) for t in tokens]


def add_format_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, tokens: Iterable[str]) -> int:
    """Add the format's markers as normal tokens and grow the embeddings.

    Each new row starts at the mean of the rows of the pieces the tokenizer
    split the marker into before (`[value_phone]` starts near "value" and
    "phone"): distinct and in-distribution, which matters when adapters keep
    the embeddings frozen and the markers must still be told apart.
    """
    missing = [t for t in dict.fromkeys(tokens) if t not in tokenizer.get_vocab()]
    if not missing:
        return 0
    pieces = [tokenizer(t, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id] for t in missing]
    added = tokenizer.add_tokens(_as_added(missing), special_tokens=False)
    old = model.get_input_embeddings().weight.shape[0]
    model.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    with torch.no_grad():
        for emb in {id(m): m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}.values():
            for row, ids in enumerate(pieces, start=old):
                emb.weight[row] = emb.weight[torch.tensor(ids)].mean(dim=0)
    return added


def build_tiny(preset: str, texts: Iterable[str], format_tokens: Iterable[str] = (), vocab_size: int = 2000, seed: int = 0):
    """A randomly initialized model of a tiny preset and its tokenizer, both offline."""
    if preset not in TINY_PRESETS:
        raise ModelLoadError(f"unknown tiny preset {preset!r}; choose one of {', '.join(TINY_PRESETS)}")
    format_tokens = list(format_tokens)
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, protected=format_tokens)
    tokenizer.add_tokens(_as_added(t for t in format_tokens if t not in tokenizer.get_vocab()), special_tokens=False)
    torch.manual_seed(seed)
    return _tiny_model(preset, tokenizer), tokenizer


def _hub_hint(name: str, err: Exception) -> ModelLoadError:
    return ModelLoadError(
        f"could not load model {name!r}: it is not a local directory and the model hub could not provide it "
        f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no details'}). "
        "Offline, pass a local path (a save_pretrained directory) or a tiny preset "
        f"({', '.join(TINY_PRESETS)}); with hub access, check the model name."
    )


# Saving an adapter, PEFT looks for config.json at the base's name, from the working directory, to see whether the
# vocabulary grew. A name relative to the checkpoint is not found there; todrl saves the base with its grown
# vocabulary, so PEFT's conclusion (not grown) is right and its warning noise.
warnings.filterwarnings("ignore", message=r"Could not find a config file in \.", category=UserWarning)


def link_base(model: PreTrainedModel, base: Path, checkpoint: Path) -> None:
    """Name `base` in the adapter's config relative to `checkpoint`, where the adapter will be saved (`../base`).

    An absolute path would break as soon as the run directory is moved or shared.
    """
    relative = os.path.relpath(base, checkpoint)
    for peft_config in getattr(model, "peft_config", {}).values():
        peft_config.base_model_name_or_path = relative if relative.startswith(".") else f"./{relative}"


def adapter_base(checkpoint: Path) -> str:
    """The base model an adapter checkpoint names: a name starting with "." is a path relative to the checkpoint."""
    config_file = checkpoint / "adapter_config.json"
    name = json.loads(config_file.read_text()).get("base_model_name_or_path")
    if not name:
        raise ModelLoadError(f"{config_file}: names no base model (base_model_name_or_path is empty)")
    if not name.startswith("."):
        return name
    base = checkpoint / name
    if not (base / "config.json").is_file():
        raise ModelLoadError(f"{config_file}: its base {name!r} is not at {base}; move the run directory as a whole, or "
                             "make a self-contained copy with `python -m todrl.export`")
    return str(base)


def load_policy(name_or_path: str | Path, format_tokens: Iterable[str] = (), **model_kwargs):
    """Load a policy and its tokenizer from a hub name, a checkpoint, or a PEFT adapter directory.

    An adapter directory is loaded onto the base model its `adapter_config.json`
    names, so SFT checkpoints trained with adapters load as they were trained.
    """
    name = str(name_or_path)
    path = Path(name)
    try:
        if (path / "adapter_config.json").is_file():
            from peft import PeftModel

            base, _ = load_policy(adapter_base(path), **model_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(path)
            model = PeftModel.from_pretrained(base, path)
        else:
            config = AutoConfig.from_pretrained(name)
            auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
            model = auto.from_pretrained(name, **model_kwargs)
            tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        if path.exists():
            raise ModelLoadError(f"{path}: not a loadable model directory ({err})") from err
        if isinstance(err, ValueError):
            raise
        raise _hub_hint(name, err) from err
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    add_format_tokens(model, tokenizer, format_tokens)
    return model, tokenizer


def load_merged(name_or_path: str | Path, **model_kwargs):
    """`load_policy` with any adapter folded into the weights: a plain model that decodes at the base model's cost."""
    model, tokenizer = load_policy(name_or_path, **model_kwargs)
    return (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model), tokenizer
