"""How fast todrl's sampling loop is against `model.generate`, side by side in one process.

    python -m todrl.sft                      # once: the trained tiny checkpoint (runs/sft/default), where lengths vary
    python scripts/bench_rollout.py [--new-tokens 32] [--repeats 3]

Same model, batch (the first 8 turns of the embedded sample), length and seed on both sides:

* ``generate``: ``model.generate(do_sample=True, top_k=50)``: sampled ids only.
* ``todrl``: `todrl.rl.rollout.sample` as a rollout runs it: top-k sampling that also keeps each token's log-prob
  under the full distribution and the last hidden state (the value head's input), dropping rows that have ended.
* ``todrl prepacked``: the same with ``prepack=True`` (float32 on CPU): frozen weights, as under an adapter, run
  on oneDNN-packed copies; the copies' size is printed.

Shapes: the tiny preset and Flan-T5-base's (random weights, nothing downloaded), in fp32 and bf16; with random
weights no row ends, so every row runs ``--new-tokens`` steps.  The trained tiny checkpoint runs up to 160 tokens
(the RL default) and stops at the end of each row.  Each figure is the median of ``--repeats`` runs, the sides
interleaved so that load from other processes falls on all of them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import T5Config, T5ForConditionalGeneration

from bench_scale import SHAPES, T5_VOCAB
from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.format import build_examples, format_tokens
from todrl.generation import pad_sources
from todrl.models import build_tiny, is_seq2seq, load_policy, set_precision
from todrl.rl.rollout import StepDecoder, packed_weight, sample
from transformers.utils import logging as hf_logging

NEVER = -1
"""An end-of-sequence id no token has: random weights run every row to the length limit on both sides."""


def models(checkpoint: Path) -> list[tuple[str, object, object, int]]:
    """(name, model, tokenizer, end id) for the tiny preset, Flan-T5-base's shape and the trained checkpoint."""
    texts = [t for e in build_examples(load_multiwoz(SAMPLE_PATH, "train")) for t in (e.source, e.target)]
    tiny, tokenizer = build_tiny("tiny", texts, format_tokens(texts), vocab_size=2000)
    torch.manual_seed(0)
    base = T5ForConditionalGeneration(T5Config(
        vocab_size=T5_VOCAB, pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id, **SHAPES["flan-t5-base"]))
    found = [("tiny", tiny, tokenizer, NEVER), ("flan-t5-base shape", base, tokenizer, NEVER)]
    if (checkpoint / "config.json").is_file():
        trained, trained_tokenizer = load_policy(checkpoint)
        found.append((f"trained tiny ({checkpoint})", trained, trained_tokenizer, trained_tokenizer.eos_token_id))
    else:
        print(f"bench_rollout: no checkpoint at {checkpoint} (python -m todrl.sft writes one); its rows are skipped",
              file=sys.stderr)
    return found


def sides(model, tokenizer, eos: int, new_tokens: int) -> tuple[dict[str, Callable[[], int]], float]:
    """The timed calls, each returning the number of tokens it generated per row (the longest row), and the MiB
    of prepacked weight copies."""
    sources = [e.source for e in build_examples(load_multiwoz(SAMPLE_PATH, "train"))[:8]]
    batch = pad_sources(tokenizer, sources, is_seq2seq(model), 256, "cpu")
    query, query_mask = batch["input_ids"], batch["attention_mask"]

    def todrl(prepack: bool) -> Callable[[], int]:
        def run() -> int:
            decoder = StepDecoder(model, query, query_mask, keep_hidden=True, prepack=prepack)
            samples = sample(decoder, new_tokens, eos, tokenizer.pad_token_id, top_k=50,
                             generator=torch.Generator().manual_seed(0))
            return samples.response.shape[1]
        return run

    def generate() -> int:
        torch.manual_seed(0)
        out = model.generate(input_ids=query, attention_mask=query_mask, do_sample=True, top_k=50,
                             max_new_tokens=new_tokens, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
        return out.shape[1] - (1 if is_seq2seq(model) else query.shape[1])

    runs = {"generate": generate, "todrl": todrl(False)}
    packed = StepDecoder(model, query, query_mask, prepack=True).packed
    if packed:
        runs["todrl prepacked"] = todrl(True)
    mib = sum(packed_weight(m.weight).numel() * packed_weight(m.weight).element_size() for m in packed) / 2**20
    return runs, mib


def timed(runs: dict[str, Callable[[], int]], repeats: int) -> dict[str, tuple[float, int]]:
    """Median seconds and tokens per row of each call; one warm-up each, then the calls interleaved."""
    lengths = {name: run() for name, run in runs.items()}
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - start)
    return {name: (statistics.median(seconds[name]), lengths[name]) for name in runs}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/sft/default/best"))
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens per row at the random-weight shapes")
    parser.add_argument("--trained-new-tokens", type=int, default=160, help="limit for the trained checkpoint")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    args = parser.parse_args()
    hf_logging.set_verbosity_error()  # generate warns that the never-matching end id never ends a row: on purpose
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    header = ("| model | precision | tokens per row | generate s | todrl s | todrl prepacked s | generate / todrl "
              "| generate / prepacked | prepacked copies MiB |")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    fp32_seconds: dict[str, float] = {}
    for name, model, tokenizer, eos in models(args.checkpoint):
        for precision in args.precisions:
            set_precision(model, precision).eval().requires_grad_(False)  # frozen, as an adapter's base
            new_tokens = args.new_tokens if eos == NEVER else args.trained_new_tokens
            runs, mib = sides(model, tokenizer, eos, new_tokens)
            result = timed(runs, args.repeats)
            generate, (todrl, length) = result["generate"][0], result["todrl"]
            packed = result.get("todrl prepacked", (None, None))[0]
            cells = [name, precision, str(length), f"{generate:.2f}", f"{todrl:.2f}",
                     "-" if packed is None else f"{packed:.2f}", f"{generate / todrl:.2f}x",
                     "-" if packed is None else f"{generate / packed:.2f}x", "-" if packed is None else f"{mib:.0f}"]
            print("| " + " | ".join(cells) + " |", flush=True)
            if precision == "fp32":
                fp32_seconds[name] = todrl
            elif name in fp32_seconds:
                print(f"  {name}: todrl in bf16 takes {todrl / fp32_seconds[name]:.2f}x its fp32 time", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
