"""How much the per-token rewards cost: incremental vs. re-parsing every prefix, and vs. generation.

    python scripts/bench_rewards.py [--batch 64] [--tokens 128] [--repeats 3]

The generations are gold targets of the MultiWOZ sample shipped with todrl,
cut into SentencePiece-like pieces ("▁" + word, long words in 4-character
chunks) and cycled to exactly `--tokens` pieces. Generation time is a
randomly initialized tiny T5 sampling `--tokens` new tokens (top-k 50) for
`--batch` inputs; the rewards of a real rollout would be computed on that
many tokens.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

from rewards import Gold, batch_token_rewards, tod_reward
from rewards.spans import build_target


def pieces_of(text: str) -> list[str]:
    pieces = []
    for word in text.split(" "):
        chunks = [word[i : i + 4] for i in range(0, len(word), 4)] if len(word) > 6 else [word]
        pieces += [f"\u2581{chunks[0]}", *chunks[1:]]
    return pieces


def rollout_batch(batch: int, tokens: int) -> tuple[list[list[str]], list[Gold]]:
    from todrl.data import load_dialogues

    turns = [turn for dialogue in load_dialogues("multiwoz21", None, "val") for turn in dialogue.turns]
    generations, golds = [], []
    for turn in itertools.islice(itertools.cycle(turns), batch):
        target = pieces_of(build_target(turn.belief_state, turn.dialogue_act, turn.system_delex))
        generations.append(list(itertools.islice(itertools.cycle(target), tokens)))
        golds.append(Gold.from_turn(turn))
    return generations, golds


def reparse_every_prefix(generations: list[list[str]], golds: list[Gold]) -> list[list[float]]:
    """The quadratic baseline: score each prefix from scratch."""
    rows = []
    for pieces, gold in zip(generations, golds):
        text = "".join(pieces).replace("\u2581", " ")
        ends = list(itertools.accumulate(len(piece) for piece in pieces))
        cumulative = [tod_reward(text[:end], gold) for end in ends]
        rows.append([after - before for before, after in zip([0.0, *cumulative], cumulative)])
    return rows


def best_time(run: Callable[[], object], repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def generation_time(batch: int, tokens: int, repeats: int) -> float:
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.set_num_threads(1)  # like the rewards; several threads on a busy 2-core machine only spin
    torch.manual_seed(0)
    config = T5Config(
        d_model=128, d_ff=256, num_layers=2, num_decoder_layers=2, num_heads=4, vocab_size=2000,
        feed_forward_proj="gated-gelu", decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
    )  # fmt: skip
    model = T5ForConditionalGeneration(config).eval()
    inputs = torch.randint(2, config.vocab_size, (batch, 64))

    def generate() -> None:
        with torch.no_grad():
            model.generate(
                input_ids=inputs, do_sample=True, top_k=50, max_new_tokens=tokens, min_new_tokens=tokens
            )

    return best_time(generate, repeats)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    generations, golds = rollout_batch(args.batch, args.tokens)
    incremental, fast = best_time(lambda: batch_token_rewards(generations, golds), args.repeats)
    reparse, slow = best_time(lambda: reparse_every_prefix(generations, golds), args.repeats)
    assert all(abs(a - b) < 1e-9 for row_a, row_b in zip(fast, slow) for a, b in zip(row_a, row_b))
    generate = generation_time(args.batch, args.tokens, args.repeats)

    print(f"{args.batch} generations x {args.tokens} tokens, best of {args.repeats}")
    print(f"{'':34}{'seconds':>10}{'per token (us)':>16}")
    per_token = 1e6 / (args.batch * args.tokens)
    for name, seconds in [
        ("rewards, incremental", incremental),
        ("rewards, re-parse every prefix", reparse),
        ("tiny T5 generation (top-k 50)", generate),
    ]:
        print(f"{name:34}{seconds:>10.4f}{seconds * per_token:>16.2f}")
    print(f"speed-up of incremental parsing: {reparse / incremental:.1f}x")
    print(f"incremental rewards / generation: {100 * incremental / generate:.2f}%")


if __name__ == "__main__":
    main()
