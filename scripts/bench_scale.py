"""What one SFT step and one RL iteration cost at the sizes users train, per precision, checkpointing and adapter.

    python scripts/bench_scale.py [--shapes tiny t5-small flan-t5-base llama-1.1b] [--new-tokens 64]

Each shape is built from its real configuration with random weights (nothing is downloaded; the configuration
values are Flan-T5's and TinyLlama's), saved as an ordinary checkpoint with a tokenizer trained on the embedded
sample, and measured in fresh processes, so that each row's peak memory is its own:

* SFT step: one optimizer step of `todrl.sft`'s model set-up (precision, gradient checkpointing, adapter, for
  the Llama shape also a 4-bit base) on a batch of 8 sample turns; the median of 3 timed steps after a warm-up,
  and the peak resident memory of the process (peak GPU memory on CUDA).
* RL iteration: `python -m todrl.rl` itself, NLPO with one PPO epoch over 8 episodes of at most `--new-tokens`
  sampled tokens, two iterations; the mean of their summed phase times, the run's peak memory, and the bytes of
  weights it holds (policy, reference, mask policy, value function) over the policy's own.
* `--weights`: only the bytes of weights each shape holds as todrl loads it in fp32, bf16 and 4-bit (NF4), no
  training: the figure the bf16 memory target is about, affordable for every shape on a CPU.

Peak memory is the process's own high-water mark (VmHWM on Linux, `todrl.summary.peak_memory_mb`): a child's
`ru_maxrss` would start at the parent's, which here holds the built model.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration
from transformers.utils import logging as hf_logging

from todrl.summary import peak_memory_mb

SHAPES = {
    "tiny": None,
    "t5-small": dict(d_model=512, d_ff=2048, d_kv=64, num_layers=6, num_heads=8, feed_forward_proj="relu"),
    "flan-t5-base": dict(d_model=768, d_ff=2048, d_kv=64, num_layers=12, num_heads=12, feed_forward_proj="gated-gelu",
                         tie_word_embeddings=False),
    "flan-t5-large": dict(d_model=1024, d_ff=2816, d_kv=64, num_layers=24, num_heads=16, feed_forward_proj="gated-gelu",
                          tie_word_embeddings=False),
    "llama-1.1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5),
}
"""Configuration values of t5-small, google/flan-t5-base, google/flan-t5-large and TinyLlama-1.1B."""
T5_VOCAB, LLAMA_VOCAB = 32128, 32000


def build(shape: str, folder: Path) -> Path:
    """The shape with random weights and a sample-trained tokenizer, saved as a checkpoint."""
    from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
    from todrl.format import build_examples, format_tokens
    from todrl.models import add_format_tokens, build_tiny

    texts = [t for e in build_examples(load_multiwoz(SAMPLE_PATH, "train")) for t in (e.source, e.target)]
    tiny, tokenizer = build_tiny("tiny-llama" if shape.startswith("llama") else "tiny", texts, format_tokens(texts),
                                 vocab_size=2000)
    if SHAPES[shape] is None:
        model = tiny
    elif shape.startswith("llama"):
        config = LlamaConfig(vocab_size=LLAMA_VOCAB, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id, **SHAPES[shape])
        model = LlamaForCausalLM(config)
    else:
        config = T5Config(vocab_size=T5_VOCAB, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                          decoder_start_token_id=tokenizer.pad_token_id, **SHAPES[shape])
        model = T5ForConditionalGeneration(config)
    add_format_tokens(model, tokenizer, [])
    path = folder / shape
    hf_logging.disable_progress_bar()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def sft_step(checkpoint: str, precision: str, checkpointing: bool, adapter: str, quantize: str) -> dict:
    """Runs in its own process: the set-up todrl.sft makes, then timed optimizer steps."""
    from todrl.adapters import AdapterConfig, apply_adapter
    from todrl.batching import Collator, tokenize_examples
    from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
    from todrl.format import build_examples
    from todrl.models import enable_gradient_checkpointing, is_seq2seq, load_policy, load_quantized, set_precision

    before = peak_memory_mb()
    if quantize != "none":
        model, tokenizer = load_quantized(checkpoint, quantize, precision)
    else:
        model, tokenizer = load_policy(checkpoint)
        set_precision(model, precision)
    if checkpointing:
        enable_gradient_checkpointing(model)
    if adapter != "full":
        model = apply_adapter(model, AdapterConfig(type=adapter), total_steps=100)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    seq2seq = is_seq2seq(model)
    rows = tokenize_examples(build_examples(load_multiwoz(SAMPLE_PATH, "train"))[:8], tokenizer, seq2seq=seq2seq,
                             max_source_length=256, max_target_length=64)
    batch = {k: v.to(model.device) for k, v in Collator(tokenizer.pad_token_id, seq2seq)([rows[i] for i in range(8)]).items()}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    model.train()
    seconds = []
    for step in range(4):
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return {"sft_step_s": statistics.median(seconds[1:]), "sft_peak_mb": peak_memory_mb(), "baseline_mb": before}


def weights(checkpoint: str, precision: str, quantize: str) -> dict:
    """Runs in its own process: the policy as todrl.sft/todrl.rl load it, without training."""
    from todrl.models import load_policy, load_quantized, set_precision

    if quantize != "none":
        model, _ = load_quantized(checkpoint, quantize, precision)
    else:
        model, _ = load_policy(checkpoint)
        set_precision(model, precision)
    held = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    return {"weight_mb": held / 2**20}


def rl_iteration(checkpoint: str, precision: str, checkpointing: bool, adapter: str, quantize: str, new_tokens: int,
                 folder: Path) -> dict:
    out = folder / f"rl-{os.getpid()}-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "todrl.rl", "--model", checkpoint, "--output-dir", str(out), "--episodes", "16",
               "--batch-size", "8", "--minibatch-size", "8", "--ppo-epochs", "1", "--max-new-tokens", str(new_tokens),
               "--eval-every", "0", "--eval-dialogues", "1", "--save-every", "1000", "--adapter", adapter,
               "--precision", precision, "--gradient-checkpointing", "yes" if checkpointing else "no",
               "--quantize", quantize]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TQDM_DISABLE": "1"})
    if result.returncode != 0:
        return {"rl_error": result.stderr.strip().splitlines()[-1][:200]}
    summary = json.loads((out / "summary.json").read_text())
    return {"rl_iteration_s": sum(summary["time_split"].values()) / summary["iterations"],
            "rl_peak_mb": summary["peak_memory_mb"], "held_ratio": summary["held_weight_ratio"],
            "policy_weight_mb": summary["policy_weight_bytes"] / 2**20}


def rows(shape: str, precisions: list[str], checkpointing: list[bool]) -> list[tuple[str, bool, str, str]]:
    """(precision, gradient checkpointing, adapter, quantize) measured for a shape."""
    if shape.startswith("llama"):  # adapters only, and bf16 only: 1.1B weights in fp32 take this CPU minutes per row
        found = [("bf16", False, "lora", "none"), ("bf16", True, "lora", "none"), ("bf16", False, "lora", "4bit")]
    else:
        found = [(p, c, a, "none") for p in precisions for c in (False, True) for a in ("lora", "full")]
    return [row for row in found if row[1] in checkpointing]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="*", default=["tiny", "t5-small", "flan-t5-base", "llama-1.1b"], choices=SHAPES)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--precisions", nargs="*", default=["fp32", "bf16"], choices=["fp32", "bf16"],
                        help="T5 shapes' precisions (the Llama shape runs bf16 only)")
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default="both",
                        help="rows without gradient checkpointing, with it, or both")
    parser.add_argument("--weights", action="store_true",
                        help="only the weight memory of each shape in fp32, bf16 and 4-bit, as the policy is loaded")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one SFT-step row, in its own process
    parser.add_argument("--one-weights", help=argparse.SUPPRESS)  # internal: one weights row, in its own process
    args = parser.parse_args()
    if args.one:
        checkpoint, precision, checkpointing, adapter, quantize = args.one.split(",")
        print(json.dumps(sft_step(checkpoint, precision, checkpointing == "1", adapter, quantize)))
        return
    if args.one_weights:
        print(json.dumps(weights(*args.one_weights.split(","))))
        return
    if args.weights:
        weight_table(args.shapes)
        return
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}")
    header = ("| shape | precision | grad. ckpt | adapter | policy weights MiB | SFT step s | SFT peak MiB | RL iteration s "
              "| RL peak MiB | RL / SFT peak | held / policy |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    results = []
    kept = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        for shape in args.shapes:
            checkpoint = str(build(shape, folder))
            for precision, checkpointing, adapter, quantize in rows(shape, args.precisions, kept):
                one = ",".join([checkpoint, precision, "1" if checkpointing else "0", adapter, quantize])
                step = subprocess.run([sys.executable, __file__, "--one", one], capture_output=True, text=True)
                row = {"shape": shape, "precision": precision, "gradient_checkpointing": checkpointing,
                       "adapter": adapter if quantize == "none" else f"{adapter} ({quantize})"}
                row |= json.loads(step.stdout.strip().splitlines()[-1]) if step.returncode == 0 else {
                    "sft_error": step.stderr.strip().splitlines()[-1][:200]}
                row |= rl_iteration(checkpoint, precision, checkpointing, adapter, quantize, args.new_tokens, folder)
                results.append(row)
                print(line(row), flush=True)
    Path("runs").mkdir(exist_ok=True)
    Path("runs/bench_scale.json").write_text(json.dumps(results, indent=2))
    held = {(r["shape"], r["precision"]): r["policy_weight_mb"] for r in results
            if "policy_weight_mb" in r and r["adapter"] == "full" and not r["gradient_checkpointing"]}
    for (shape, precision), mb in held.items():
        if precision == "bf16" and (shape, "fp32") in held:
            print(f"{shape}: bf16 policy weights {mb:.0f} MiB = {mb / held[shape, 'fp32']:.3f}x fp32's")


def weight_table(shapes: list[str]) -> None:
    """Weight bytes held in bf16 and 4-bit against fp32 (the bf16 target: at most 0.55x), each load in a fresh process."""
    print("| shape | loaded as | weights MiB | / fp32 |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        for shape in shapes:
            checkpoint = str(build(shape, Path(scratch)))
            fp32 = None
            for precision, quantize in (("fp32", "none"), ("bf16", "none"), ("bf16", "4bit")):
                one = ",".join([checkpoint, precision, quantize])
                run = subprocess.run([sys.executable, __file__, "--one-weights", one], capture_output=True, text=True)
                if run.returncode != 0:
                    print(f"| {shape} | {precision} {quantize} | {run.stderr.strip().splitlines()[-1][:120]} | |")
                    continue
                row = json.loads(run.stdout.strip().splitlines()[-1])
                fp32 = fp32 or row["weight_mb"]
                name = precision if quantize == "none" else f"{quantize} NF4, {precision} compute"
                print(f"| {shape} | {name} | {row['weight_mb']:.0f} | {row['weight_mb'] / fp32:.3f}x |", flush=True)


def line(row: dict) -> str:
    def figure(key: str, digits: int) -> str:
        return f"{row[key]:.{digits}f}" if key in row else row.get("sft_error" if key.startswith("sft") else "rl_error", "-")

    ratio = f"{row['rl_peak_mb'] / row['sft_peak_mb']:.2f}" if "rl_peak_mb" in row and "sft_peak_mb" in row else "-"
    return (f"| {row['shape']} | {row['precision']} | {'on' if row['gradient_checkpointing'] else 'off'} | {row['adapter']} | "
            f"{figure('policy_weight_mb', 0)} | {figure('sft_step_s', 2)} | {figure('sft_peak_mb', 0)} | {figure('rl_iteration_s', 2)} | "
            f"{figure('rl_peak_mb', 0)} | {ratio} | {figure('held_ratio', 3)} |")


if __name__ == "__main__":
    main()
