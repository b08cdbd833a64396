"""Does an RL run change greedy dev behaviour for the better, or only by as much as any change of its size would?

Greedy decoding of a small policy flips wherever two tokens are nearly tied,
so any update moves dev scores. This puts an RL checkpoint beside random
changes of the same size: the SFT weights plus Gaussian noise (each tensor's
noise has standard deviation `scale` x the tensor's mean absolute weight), two
seeds per scale. Size is the KL from the SFT policy along the SFT policy's own
greedy dev generations (nats per turn, summed over tokens). Every model is
scored on the run's dev dialogues as RL evaluates them (task reward, JGA,
Inform, Success, BLEU, Combined), plus how its belief states moved: turns
whose state differs from SFT's, exact states turned wrong or right, and the
extra and missing slot-value pairs against gold.

    python scripts/perturbation_baseline.py --config configs/probe_multiwoz21_dev.yaml \\
        runs/probe/rtod/best runs/probe/kl_only/best --scales 0.02,0.04,0.06,0.08
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch
from rewards.spans import parse_target

from todrl.generation import pad_sources
from todrl.models import is_seq2seq, load_merged, load_policy
from todrl.rl.build import sft_checkpoint
from todrl.rl.evaluation import DevEvaluation
from todrl.rl.probe import probe_parser, probe_setup
from todrl.rl.rollout import score
from todrl.rl.config import RLConfig


@torch.no_grad()
def greedy_ids(model, tokenizer, sources: list[str], cfg: RLConfig, batch_size: int) -> list[tuple[dict, torch.Tensor, torch.Tensor]]:
    """Per batch: the padded sources, SFT's greedy response ids and their mask (up to and including end-of-sequence)."""
    seq2seq = is_seq2seq(model)
    batches = []
    for start in range(0, len(sources), batch_size):
        batch = pad_sources(tokenizer, sources[start : start + batch_size], seq2seq, cfg.max_source_length, "cpu")
        out = model.generate(**batch, max_new_tokens=cfg.max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        response = out[:, 1:] if seq2seq else out[:, batch["input_ids"].shape[1] :]
        ended_before = (response == tokenizer.eos_token_id).long().cumsum(-1) - (response == tokenizer.eos_token_id).long()
        batches.append((batch, response, (ended_before == 0).long()))
    return batches


@torch.no_grad()
def kl_from(reference, model, batches) -> float:
    """Mean over turns of sum_t KL(reference || model) along the reference's greedy responses."""
    total, turns = 0.0, 0
    for batch, response, mask in batches:
        args = (batch["input_ids"], batch["attention_mask"], response, mask)
        log_p = score(reference, *args, with_hidden=False)[0].log_softmax(-1)
        log_q = score(model, *args, with_hidden=False)[0].log_softmax(-1)
        total += ((log_p.exp() * (log_p - log_q)).sum(-1) * mask).sum().item()
        turns += response.shape[0]
    return total / turns


def pairs(belief_state: dict) -> set[tuple[str, str, str]]:
    return {(domain, slot, value) for domain, slots in belief_state.items() for slot, value in slots.items()}


def state_changes(gold: list[set], before: list[set], after: list[set]) -> dict[str, int]:
    """How the generated states moved against the gold ones (exact-match flips, extra and missing pairs)."""
    return {"states_changed": sum(b != a for b, a in zip(before, after)),
            "right_to_wrong": sum(b == g != a for g, b, a in zip(gold, before, after)),
            "wrong_to_right": sum(b != g == a for g, b, a in zip(gold, before, after)),
            "extra_pairs": sum(len(a - g) for g, a in zip(gold, after)),
            "missing_pairs": sum(len(g - a) for g, a in zip(gold, after))}


def perturbed(model, scale: float, seed: int):
    noisy = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for weight in noisy.parameters():
            weight.add_(torch.randn(weight.shape, generator=generator) * scale * weight.abs().mean())
    return noisy


def main(argv: list[str] | None = None) -> None:
    parser = probe_parser(__doc__, checkpoints="*")
    parser.add_argument("--scales", default="0.02,0.04,0.06,0.08", help="noise scales, comma-separated")
    parser.add_argument("--seeds", default="1,2", help="noise seeds, comma-separated")
    parser.add_argument("--json", type=Path, help="also write every row to this file")
    args = parser.parse_args(argv)
    cfg, dialogues = probe_setup(args)
    evaluate = DevEvaluation.of_run(cfg, dialogues, 64)
    sft, tokenizer = load_policy(sft_checkpoint(cfg.model))
    sft.eval()
    sources = [example.source for example in evaluate.examples]
    batches = greedy_ids(sft, tokenizer, sources, cfg, 64)
    gold = [pairs(example.belief_state) for example in evaluate.examples]

    def states(texts: list[str]) -> list[set[tuple[str, str, str]]]:
        return [pairs(parse_target(text).belief_state) for text in texts]

    sft_generations = evaluate.generate(sft, tokenizer)
    sft_states = states(sft_generations[1])

    def row(name: str, model, generations=None) -> dict:
        """One model's figures; `generations` when they are already at hand."""
        predictions, texts = generations or evaluate.generate(model.eval(), tokenizer)
        changes = state_changes(gold, sft_states, states(texts))
        result = {"model": name, "kl": kl_from(sft, model, batches), **changes, **evaluate.score(predictions, texts)}
        keys = ("eval/task_reward", "eval/jga", "eval/inform", "eval/success", "eval/bleu", "eval/combined")
        moves = f"{changes['states_changed']} | {changes['right_to_wrong']} / {changes['wrong_to_right']} | " \
                f"{changes['extra_pairs']} / {changes['missing_pairs']}"
        print(f"| {name} | {result['kl']:.3f} | {moves} | " + " | ".join(f"{result.get(k, float('nan')):.3f}"
              if k == "eval/task_reward" else f"{result.get(k, float('nan')):.1f}" for k in keys) + " |", flush=True)
        return result

    print(f"{len(sources)} dev turns of {len(dialogues)} dialogues; KL in nats per turn along SFT's greedy outputs\n")
    print("| model | KL to SFT | states changed | exact state right→wrong / wrong→right | extra / missing pairs "
          "| task reward | JGA | Inform | Success | BLEU | Combined |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rows = [row("SFT", sft, sft_generations)]
    for checkpoint in args.checkpoints:
        if not checkpoint.is_dir():
            sys.exit(f"perturbation_baseline: no checkpoint directory at {checkpoint}")
        rows.append(row(str(checkpoint), load_merged(checkpoint)[0]))
    for scale in (float(s) for s in args.scales.split(",")):
        for seed in (int(s) for s in args.seeds.split(",")):
            rows.append(row(f"noise {scale:g}, seed {seed}", perturbed(sft, scale, seed)))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
