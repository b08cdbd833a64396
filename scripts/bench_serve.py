"""Latency of one chat turn through `python -m todrl.serve`: median and p95 over N requests, one at a time.

    OMP_NUM_THREADS=1 python -m todrl.sft && OMP_NUM_THREADS=1 python scripts/bench_serve.py

A real server is started on 127.0.0.1 over the checkpoint (default: the
embedded default SFT run's best) and spoken to with the `openai` client. Each
request is the next user turn of a test dialogue of the embedded MultiWOZ
sample, sent with the whole history so far, the server's own earlier replies
carrying their `todrl` field back as a client should; so one request is one
generation plus lexicalization, HTTP and JSON. A few untimed requests warm up first.
The same turns are then timed in process (`DialoguePolicy.respond`), which
tells how much of a request is the policy itself.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import openai

from todrl.data.multiwoz import SAMPLE_PATH, load_multiwoz
from todrl.data.normalize import normalize_text
from todrl.serve.launch import free_port, running
from todrl.serve.policy import DialoguePolicy


def user_turns() -> Iterator[tuple[bool, str]]:
    """(starts a new dialogue, user words), over the sample's test dialogues, round and round."""
    dialogues = load_multiwoz(SAMPLE_PATH, "test")
    while True:
        for dialogue in dialogues:
            for index, turn in enumerate(dialogue.turns):
                yield index == 0, turn.user


def percentile(values: list[float], share: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", type=Path, default=Path("runs/sft/default/best"))
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    if not args.checkpoint.is_dir():
        raise SystemExit(f"bench_serve: no checkpoint at {args.checkpoint}; run `python -m todrl.sft` first")

    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    model = str(args.checkpoint)
    with running("todrl.serve", ["--checkpoint", model, "--port", str(port)], f"{base}/models"):
        client = openai.OpenAI(base_url=base, api_key="unused", max_retries=0, timeout=300)
        history: list[dict] = []
        seconds: list[float] = []
        for count, (new_dialogue, user) in zip(range(args.warmup + args.requests), user_turns()):
            history = [] if new_dialogue else history
            history.append({"role": "user", "content": user})
            start = time.perf_counter()
            reply = client.chat.completions.create(model=model, messages=history).choices[0].message
            if count >= args.warmup:
                seconds.append(time.perf_counter() - start)
            history.append({"role": "assistant", "content": reply.content, "todrl": reply.todrl})

    in_process = policy_seconds(DialoguePolicy(args.checkpoint), args.warmup, args.requests)
    result = {"checkpoint": model, "requests": len(seconds), "median_ms": 1000 * statistics.median(seconds),
              "p95_ms": 1000 * percentile(seconds, 0.95), "mean_ms": 1000 * statistics.fmean(seconds),
              "max_ms": 1000 * max(seconds), "in_process_median_ms": 1000 * statistics.median(in_process)}
    print(f"one chat turn over {result['requests']} requests: median {result['median_ms']:.0f} ms, "
          f"p95 {result['p95_ms']:.0f} ms (mean {result['mean_ms']:.0f} ms, max {result['max_ms']:.0f} ms); "
          f"in process: median {result['in_process_median_ms']:.0f} ms")
    print(json.dumps(result))


def policy_seconds(policy: DialoguePolicy, warmup: int, requests: int) -> list[float]:
    """The same turns answered in process, each after the policy's own previous turn."""
    seconds: list[float] = []
    previous = None
    for count, (new_dialogue, user) in zip(range(warmup + requests), user_turns()):
        previous = None if new_dialogue else previous
        start = time.perf_counter()
        turn = policy.respond(user, previous)
        if count >= warmup:
            seconds.append(time.perf_counter() - start)
        previous = turn.as_turn(normalize_text(user))
    return seconds


if __name__ == "__main__":
    main()
