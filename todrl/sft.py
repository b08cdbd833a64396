"""Supervised fine-tuning of an end-to-end TOD policy: `python -m todrl.sft`.

With no arguments it trains the tiny T5 preset on the MultiWOZ 2.1 sample that
ships with todrl, in a couple of minutes on a CPU. Checkpoints are plain
`save_pretrained` directories (`best/`, `last/`) that transformers or PEFT
load without todrl (an adapter names its base `../base`, so the run directory
moves as a whole); `--resume` continues from `last/`.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar, Literal

import torch
from accelerate import Accelerator, PartialState
from torch.distributed.fsdp import register_fsdp_forward_method
from accelerate.utils import set_seed
from torch.utils.data import DataLoader
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from todrl.adapters import AdapterConfig, after_optimizer_step, apply_adapter
from todrl.batching import Collator, tokenize_examples
from todrl.checkpoint import load_resumable, rng_state, save_checkpoint, set_rng_state
from todrl.config import check_choices, check_ranges, parse_config, save_config
from todrl.data import span_vocabulary
from todrl.data.splits import DataConfig
from todrl.format import Example, FormatConfig, format_tokens
from todrl.generation import generate_texts
from todrl.health import TrainingFailed, check_skipped, finite_weights, run_main
from todrl.instruct import turn_examples
from todrl.models import (
    TINY_PRESETS,
    build_tiny,
    check_quantize,
    enable_gradient_checkpointing,
    is_seq2seq,
    link_base,
    load_policy,
    load_quantized,
    set_precision,
)
from todrl.run_directory import claim
from todrl.sharding import check_sharding, full_state_dict, is_sharded, make_accelerator, prepare_for_sharding
from todrl.summary import Stopwatch


@dataclass
class SFTConfig(DataConfig):
    """Supervised fine-tuning of an end-to-end TOD policy (belief state, act, response in one sequence)."""

    model: str = "tiny"
    """Hub name, local path, or a preset built offline: tiny (T5), tiny-llama, small (T5-small-sized)."""
    task: Literal["e2e", "dst", "dst-cot"] = "e2e"
    """e2e (BS, DA, SR), dst (BS only), or dst-cot (step by step: the user turn's formal representation and a
    rationale, then BS given them; both stages' examples in one mixture, see todrl.cot)."""
    output_dir: str = "runs/sft/default"
    """Run directory: config.yaml, TensorBoard logs, summary.json and the best/ and last/ checkpoints."""
    epochs: int = 15
    """Passes over the training dialogues' turns."""
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = run all epochs)."""
    batch_size: int = 16
    """Turns per batch and process."""
    grad_accum: int = 1
    """Batches accumulated into one optimizer step."""
    lr: float = 2e-3
    """Peak AdamW learning rate: linear warm-up, then linear decay to 0."""
    weight_decay: float = 0.0
    """AdamW's decoupled weight decay."""
    warmup_ratio: float = 0.05
    """Share of the optimizer steps over which the learning rate warms up."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm."""
    max_source_length: int = 256
    """Context tokens kept, cut from the left so the current user turn survives."""
    max_target_length: int = 160
    """Target tokens learned (cut from the right), and the length cap of the dev samples printed at the end."""
    eval_every: int = 0
    """Evaluate the dev loss every N optimizer steps (0 = once per epoch)."""
    seed: int = 42
    """Training seed: initialization (of a tiny preset or an adapter) and the order of the turns."""
    vocab_size: int = 2000
    """Tokenizer size of the tiny presets (trained on the training texts)."""
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"
    """Mixed-precision training through accelerate (float32 weights, autocast activations)."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Dtype of the weights themselves (an adapter stays float32 over a bf16 base); fp16 is refused for T5."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: less memory, about one more forward pass of time."""
    quantize: Literal["none", "4bit", "8bit"] = "none"
    """Adapter runs: train over the base quantized by bitsandbytes (4bit: QLoRA's NF4, computing in the precision)."""
    resume: bool = False
    """Continue from output_dir/last, with the settings the run was started with (a longer run and other
    evaluation or saving intervals aside)."""
    overwrite: bool = False
    """Replace the run already in output_dir (its checkpoints, logs and summary); without it a fresh run refuses."""
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(type="full"))
    """Trainable parameters: full | lora | adalora | sucg, with their budget settings."""
    format: FormatConfig = field(default_factory=FormatConfig)
    """Input/target format: e2e | instruct, and the instruct sub-task mix (`--format.mix 1,1,1`)."""

    RANGES: ClassVar[dict[str, str]] = {
        **DataConfig.RANGES, "epochs": "[1, inf)", "max_steps": "[0, inf)", "batch_size": "[1, inf)",
        "grad_accum": "[1, inf)", "lr": "(0, 1]", "weight_decay": "[0, inf)", "warmup_ratio": "[0, 1)",
        "max_grad_norm": "(0, inf)", "max_source_length": "[1, inf)", "max_target_length": "[1, inf)",
        "eval_every": "[0, inf)", "seed": "[0, 4294967295]", "vocab_size": "[1, inf)",
    }  # fmt: skip

    def __post_init__(self) -> None:
        check_choices(self)
        check_ranges(self)
        check_quantize(self.quantize, self.adapter.type)


def initial_policy(cfg: SFTConfig, examples: list[Example]):
    """The untrained policy: a tiny preset built on the training texts, or a pretrained model with the format's tokens."""
    texts = [t for e in examples for t in (e.source, e.target)]
    tokens = format_tokens(texts)
    if cfg.model in TINY_PRESETS:
        return build_tiny(cfg.model, texts, tokens, vocab_size=cfg.vocab_size, seed=cfg.seed)
    return load_policy(cfg.model, format_tokens=tokens)


def policy_for_run(cfg: SFTConfig, examples: list[Example], out: Path, total_steps: int):
    """Build (or rebuild on resume) the policy with its adapter.

    Adapter runs save the starting model once to `out/base` (the main process
    writes it, the others wait), so that the adapter checkpoints name a base
    that exists (a tiny preset or a model with resized embeddings has no hub
    name to point at).
    """
    base_dir = out / "base"
    last = out / "last"
    if cfg.adapter.type == "full":
        model, tokenizer = load_policy(last) if cfg.resume else initial_policy(cfg, examples)
        return prepared(model, cfg), tokenizer
    if cfg.resume:
        model, tokenizer = load_policy(base_dir)
    else:
        model, tokenizer = initial_policy(cfg, examples)
        processes = PartialState()
        if processes.is_main_process:
            save_checkpoint(base_dir, set_precision(model, cfg.precision), tokenizer,
                            {"role": "base model of the adapter checkpoints"})
        processes.wait_for_everyone()
    model = load_quantized(base_dir, cfg.quantize, cfg.precision)[0] if cfg.quantize != "none" else prepared(model, cfg)
    model = apply_adapter(model, cfg.adapter, total_steps)
    link_base(model, base_dir, last)  # best/ sits beside last/ too
    if cfg.resume:
        from peft import load_peft_weights, set_peft_model_state_dict

        set_peft_model_state_dict(model, load_peft_weights(str(last)))
    return model, tokenizer


def prepared(model, cfg: SFTConfig):
    """The model in the run's precision, with gradient checkpointing if asked."""
    model = set_precision(model, cfg.precision)
    if cfg.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


@torch.no_grad()
def dev_loss(model, loader, accelerator: Accelerator) -> float:
    """Token-averaged loss over the dev slice (the same weighting as training)."""
    model.eval()
    total = torch.zeros(2, device=accelerator.device)
    for batch in loader:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).logits
        labels = batch["labels"]
        if not is_seq2seq(accelerator.unwrap_model(model)):
            logits, labels = logits[:, :-1], labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, reduction="sum")
        total += torch.stack([loss, (labels != -100).sum().float()])
    total = accelerator.reduce(total, reduction="sum")
    model.train()
    return (total[0] / total[1].clamp(min=1)).item()


def train(cfg: SFTConfig) -> dict:
    """Run SFT; returns the run's summary (also written to output_dir/summary.json)."""
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)
    accelerator = make_accelerator(gradient_accumulation_steps=cfg.grad_accum, mixed_precision=cfg.mixed_precision,
                                   log_with="tensorboard", project_dir=str(out))
    check_sharding(accelerator, cfg.adapter.type, cfg.resume, cfg.quantize)
    with claim(out, cfg, "sft", accelerator.is_main_process):
        accelerator.wait_for_everyone()
        return run(cfg, accelerator, out)


def run(cfg: SFTConfig, accelerator: Accelerator, out: Path) -> dict:
    stopwatch = Stopwatch()
    train_dialogues, dev_dialogues = cfg.load_train_dev()
    vocabulary = span_vocabulary(cfg.dataset, cfg.data_dir)
    train_examples, dev_examples = (turn_examples(cfg.format, dialogues, cfg.dataset, cfg.data_dir, vocabulary, cfg.task,
                                                  cfg.seed) for dialogues in (train_dialogues, dev_dialogues))
    steps_per_epoch = math.ceil(len(train_examples) / (cfg.batch_size * accelerator.num_processes * cfg.grad_accum))
    total_steps = cfg.max_steps or steps_per_epoch * cfg.epochs

    model, tokenizer = policy_for_run(cfg, train_examples, out, total_steps)
    sharded = is_sharded(accelerator)
    if sharded:
        prepare_for_sharding(model)
    seq2seq = is_seq2seq(model)
    encode = dict(tokenizer=tokenizer, seq2seq=seq2seq, max_source_length=cfg.max_source_length, max_target_length=cfg.max_target_length)
    train_set = tokenize_examples(train_examples, **encode)
    dev_set = tokenize_examples(dev_examples, **encode)
    collate = Collator(tokenizer.pad_token_id, seq2seq)

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    dev_loader = DataLoader(dev_set, batch_size=cfg.batch_size, collate_fn=collate)
    model, optimizer, scheduler, dev_loader = accelerator.prepare(model, optimizer, scheduler, dev_loader)
    register_fsdp_forward_method(model, "generate")  # sharded: generate gathers the root's weights as forward does

    state = {"step": 0, "epoch": 0, "batches_in_epoch": 0, "best_dev_loss": None, "best_step": None, "skipped_steps": 0}
    if cfg.resume:
        state, training = load_resumable(out / "last")
        optimizer.load_state_dict(training["optimizer"])
        scheduler.load_state_dict(training["scheduler"])
        set_rng_state(training["rng"])
        accelerator.print(f"resuming from {out / 'last'} at step {state['step']}")
    accelerator.init_trackers("sft", config={k: str(v) for k, v in asdict(cfg).items()})
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")

    def checkpoint(name: str) -> None:
        """Every process calls it (a sharded run gathers the weights first); the main one writes."""
        weights = full_state_dict(accelerator, model)
        if accelerator.is_main_process:
            training = None if sharded else {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                             "rng": rng_state()}
            save_checkpoint(out / name, accelerator.unwrap_model(model), tokenizer, {**state, "config": asdict(cfg)}, training,
                            weights)

    def evaluate() -> None:
        state["evaluated_step"] = state["step"]
        loss = dev_loss(model, dev_loader, accelerator)
        accelerator.log({"dev/loss": loss}, step=state["step"])
        if not math.isfinite(loss):
            say(f"dev loss {loss}: not a candidate for best/")
        elif state["best_dev_loss"] is None or loss < state["best_dev_loss"]:
            state.update(best_dev_loss=loss, best_step=state["step"])
            checkpoint("best")
        checkpoint("last")

    progress = tqdm(total=total_steps, initial=state["step"], desc="sft", disable=not accelerator.is_main_process)

    def say(message: str) -> None:
        progress.write(f"step {state['step'] + 1}: {message}", file=sys.stderr)

    def skip(why: str) -> None:
        """A non-finite update is dropped; weights that are no longer finite end the run, keeping best/ as it is."""
        state["skipped_steps"] += 1
        say(f"{why}; update skipped")
        if not finite_weights(model):
            best = "nothing finite was saved" if state["best_step"] is None else f"best/ keeps step {state['best_step']}"
            raise TrainingFailed(f"step {state['step'] + 1}: the weights are no longer finite (lr {cfg.lr} too "
                                 f"large?); {best}")

    model.train()
    healthy = True  # every micro-batch of the current optimizer step had a finite loss
    while state["step"] < total_steps:
        # The epoch's order and the loader's own seed come from a private generator: drawing them from the
        # global RNG would shift dropout masks after a resume.
        epoch_rng = torch.Generator().manual_seed(cfg.seed + state["epoch"])
        order = torch.randperm(len(train_set), generator=epoch_rng)
        loader = accelerator.prepare_data_loader(
            DataLoader(train_set.select(order.tolist()), batch_size=cfg.batch_size, collate_fn=collate, generator=epoch_rng))
        loader = accelerator.skip_first_batches(loader, state["batches_in_epoch"])
        for batch in loader:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                finite = accelerator.reduce(torch.isfinite(loss.detach()).float(), reduction="mean").item() == 1.0
                if finite:
                    accelerator.backward(loss)
                healthy = healthy and finite
                if accelerator.sync_gradients:
                    norm = accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                    if not healthy:
                        skip(f"non-finite loss {loss.item():.4g}")
                    elif not torch.isfinite(norm):
                        skip("non-finite gradient norm")
                    else:
                        optimizer.step()
                        after_optimizer_step(accelerator.unwrap_model(model), state["step"] + 1,
                                             lambda b=batch: model(**b).loss)
                    healthy = True
                scheduler.step()
                optimizer.zero_grad()
            state["batches_in_epoch"] += 1
            if not accelerator.sync_gradients:
                continue
            state["step"] += 1
            progress.update(1)
            progress.set_postfix(loss=f"{loss.item():.3f}", epoch=state["epoch"])
            accelerator.log({"train/loss": loss.item(), "train/lr": scheduler.get_last_lr()[0]}, step=state["step"])
            if cfg.eval_every and state["step"] % cfg.eval_every == 0:
                evaluate()
            if state["step"] >= total_steps:
                break
        else:
            state.update(epoch=state["epoch"] + 1, batches_in_epoch=0)
            if not cfg.eval_every:
                evaluate()
    progress.close()
    if state.get("evaluated_step") != state["step"]:
        evaluate()

    if state["best_step"] is None:
        raise TrainingFailed(f"no evaluation gave a finite dev loss; nothing was saved as best/ (lr {cfg.lr})")
    summary = {**stopwatch.summary(model).as_dict(), "best_dev_loss": state["best_dev_loss"], "best_step": state["best_step"],
               "steps": state["step"], "skipped_steps": state["skipped_steps"], "train_examples": len(train_examples), "dev_examples": len(dev_examples),
               "best_checkpoint": str(out / "best")}
    if accelerator.is_main_process or sharded:  # a sharded generate is a collective: every process decodes the same
        sample = generate_texts(accelerator.unwrap_model(model), tokenizer, [e.source for e in dev_examples[:2]],
                                max_source_length=cfg.max_source_length, max_new_tokens=cfg.max_target_length,
                                **({"synced_gpus": True} if sharded else {}))
    if accelerator.is_main_process:
        for example, text in zip(dev_examples[:2], sample):
            accelerator.print(f"dev {example.dialogue_id} turn {example.turn}\n  gold: {example.target}\n  greedy: {text}")
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        accelerator.print(f"best dev loss {state['best_dev_loss']:.4f} at step {state['best_step']}; checkpoints in {out}/best and {out}/last")
        accelerator.print(stopwatch.summary(model).line())
    accelerator.end_training()
    check_skipped(state["skipped_steps"], state["step"], f"lower lr ({cfg.lr}) or max_grad_norm")
    return summary


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(SFTConfig, argv, description=__doc__.splitlines()[0])
    run_main("todrl.sft", train, cfg)


if __name__ == "__main__":
    main()
