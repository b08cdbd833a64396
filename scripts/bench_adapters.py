"""Full fine-tuning, LoRA, AdaLoRA and SUCG on SGD state tracking (seed 000, Table 1), tiny preset on a CPU.

    python scripts/bench_adapters.py --config configs/bench_adapters.yaml

Adapters adapt a pretrained model, so the benchmark has two stages: a tiny T5
first learns state tracking on `source_services` with full fine-tuning (the
"pretrained" base), then each method adapts that base to `target_services`
with the same seed, steps and batches, and is scored on their test dialogues:
the official per-frame JGA and average goal accuracy (`todrl.evaluate.sgd`,
google-research's schema_guided_dst rules) with Acc(VAS) over its per-service
JGA, and todrl's strict per-turn JGA, slot accuracy and Acc(VAS)
(`todrl.evaluate.dst`) beside them. Every training run
is `python -m todrl.sft` in its own process, so its wall time and peak memory
are its own. Last, SUCG and AdaLoRA train side by side on the same batches to
time a training step of each at the adapter settings of the config.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from rewards.spans import parse_target

from todrl.adapters import AdapterConfig, after_optimizer_step, apply_adapter
from todrl.batching import Collator, tokenize_examples
from todrl.checkpoint import save_checkpoint
from todrl.config import parse_config, save_config
from todrl.data import load_dialogues
from todrl.data.records import Dialogue
from todrl.evaluate.dst import DstEvaluator, slot_inventory
from todrl.evaluate.predictions import PredictedTurn
from todrl.evaluate.sgd import SgdEvaluator
from todrl.format import build_examples, format_tokens
from todrl.generation import generate_texts
from todrl.models import build_tiny, load_policy
from todrl.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class BenchConfig:
    """Settings of the adapter benchmark; the adapter fields are shared by lora, adalora and sucg."""

    output_dir: str = "runs/bench_adapters"
    data_dir: str | None = None
    """SGD folder; None = $TODRL_DATA/sgd, else ../shared/data/sgd."""
    source_services: list[str] = field(default_factory=lambda: ["restaurants_1", "events_2", "flights_1", "media_1"])
    """Services the base model learns state tracking on (full fine-tuning)."""
    target_services: list[str] = field(default_factory=lambda: ["hotels_2", "movies_1", "ridesharing_2", "services_1"])
    """Services every method adapts the base to, and is scored on."""
    methods: list[str] = field(default_factory=lambda: ["full", "lora", "adalora", "sucg"])
    base_steps: int = 800
    steps: int = 400
    """Optimizer steps of each method's run (the shared budget)."""
    batch_size: int = 16
    base_lr: float = 2e-3
    lr: float = 2e-3
    """Learning rate of every method's run."""
    dev_dialogues: int = 30
    """Training dialogues held out per run to pick its best checkpoint."""
    test_dialogues: int = 30
    """Test dialogues scored per target service."""
    timing_steps: int = 100
    """Steps of the SUCG vs AdaLoRA timing (its own budget schedule over these steps)."""
    seed: int = 42
    vocab_size: int = 2000
    adapter: AdapterConfig = field(default_factory=AdapterConfig)


def sgd_dir(cfg: BenchConfig) -> Path:
    if cfg.data_dir:
        return Path(cfg.data_dir)
    root = os.environ.get("TODRL_DATA")
    return Path(root) / "sgd" if root else ROOT.parent / "shared" / "data" / "sgd"


def run_sft(cfg: SFTConfig, log: Path) -> dict:
    """One `python -m todrl.sft` process; returns its summary.json."""
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    config_path = out / "bench_sft.yaml"
    save_config(cfg, config_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("w") as sink:
        done = subprocess.run([sys.executable, "-m", "todrl.sft", "--config", str(config_path)], stdout=sink,
                              stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{cfg.output_dir}: todrl.sft failed (exit {done.returncode}); see {log}")
    return json.loads((out / "summary.json").read_text())


def sft_config(cfg: BenchConfig, model: str, services: list[str], steps: int, lr: float, adapter: AdapterConfig,
               out: Path) -> SFTConfig:
    return SFTConfig(
        model=model, dataset="sgd", data_dir=str(sgd_dir(cfg)), task="dst", train_split="train", dev_split="train",
        dev_dialogues=cfg.dev_dialogues, services=services, output_dir=str(out), max_steps=steps,
        eval_every=max(steps // 4, 1), batch_size=cfg.batch_size, lr=lr, max_target_length=64, seed=cfg.seed,
        adapter=adapter,
    )


def build_initial_model(cfg: BenchConfig, dialogues: list[Dialogue], out: Path) -> Path:
    """Random tiny T5 whose tokenizer knows every service's words and markers, so no token is added later.

    (Tokens added to a model under LoRA-style adapters stay frozen at their initial rows.)
    """
    texts = [t for e in build_examples(dialogues, task="dst") for t in (e.source, e.target)]
    model, tokenizer = build_tiny("tiny", texts, format_tokens(texts), vocab_size=cfg.vocab_size, seed=cfg.seed)
    save_checkpoint(out, model, tokenizer, {"role": "random initial model of the adapter benchmark"})
    return out


def scored_dialogues(cfg: BenchConfig) -> list[Dialogue]:
    """The first `test_dialogues` single-service test dialogues of each target service."""
    dialogues = load_dialogues("sgd", sgd_dir(cfg), "test", cfg.target_services)
    chosen = []
    for service in cfg.target_services:
        own = [d for d in dialogues if d.services == [service]]
        if not own:
            raise ValueError(f"{sgd_dir(cfg)}: no single-service test dialogue of {service}")
        chosen.extend(own[: cfg.test_dialogues])
    return chosen


def score_dst(checkpoint: Path, dialogues: list[Dialogue], official: SgdEvaluator) -> tuple[dict, dict, int]:
    """Greedy belief states for every test turn, scored officially and strictly; also the adapter size kept."""
    model, tokenizer = load_policy(checkpoint)
    examples = build_examples(dialogues, task="dst")
    texts = generate_texts(model, tokenizer, [e.source for e in examples], batch_size=64, max_new_tokens=64)
    slots = {domain: sorted(names) for domain, names in slot_inventory(dialogues).items()}
    predictions: dict[str, list[PredictedTurn]] = {d.id: [] for d in dialogues}
    for example, text in zip(examples, texts):
        predictions[example.dialogue_id].append(PredictedTurn(response="", state=parse_target(text, slots).belief_state))
    adapter = {n: p.numel() for n, p in model.named_parameters() if "lora_" in n}
    kept = sum(adapter.values()) if adapter else sum(p.numel() for p in model.parameters())
    strict = DstEvaluator(dialogues).evaluate(predictions, checkpoint).as_dict()
    return official.evaluate(predictions, checkpoint).as_dict(), strict, kept


def time_steps(cfg: BenchConfig, base: Path, dialogues: list[Dialogue]) -> dict[str, float]:
    """Seconds per training step of AdaLoRA and SUCG (both scoring modes), interleaved step by step on the same batches."""
    model, tokenizer = load_policy(base)
    examples = build_examples(dialogues, task="dst")
    data = tokenize_examples(examples, tokenizer, True, 256, 64)
    collate = Collator(tokenizer.pad_token_id, True)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(cfg.seed)).tolist()
    variants = {
        "adalora": dataclasses.replace(cfg.adapter, type="adalora"),
        "sucg": dataclasses.replace(cfg.adapter, type="sucg"),
        "sucg every step": dataclasses.replace(cfg.adapter, type="sucg", sucg_every="step"),
    }
    runs = {}
    for name, adapter in variants.items():
        torch.manual_seed(cfg.seed)
        policy = apply_adapter(copy.deepcopy(model), adapter, total_steps=cfg.timing_steps)
        optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=cfg.lr)
        runs[name] = (policy, optimizer)
    seconds = dict.fromkeys(variants, 0.0)
    for step in range(1, cfg.timing_steps + 1):
        rows = order[(step - 1) * cfg.batch_size : step * cfg.batch_size]
        batch = collate([data[i] for i in rows])
        for name, (policy, optimizer) in runs.items():
            start = time.perf_counter()
            policy(**batch).loss.backward()
            optimizer.step()
            after_optimizer_step(policy, step, lambda p=policy: p(**batch).loss)
            optimizer.zero_grad()
            seconds[name] += time.perf_counter() - start
    return {name: total / cfg.timing_steps for name, total in seconds.items()}


def table(rows: list[dict]) -> str:
    header = ("| method | JGA | AGA | Acc(VAS) | strict JGA | strict slot acc. | strict Acc(VAS) | wall time (s) | "
              "peak memory (MiB) | trainable params | params kept |\n|---|---|---|---|---|---|---|---|---|---|---|")
    lines = [header]
    for r in rows:
        cells = [r[key] for key in ("jga", "aga", "vas", "strict_jga", "strict_slot_accuracy", "strict_vas")]
        lines.append(
            f"| {r['method']} | " + " | ".join("n/a" if c is None else f"{c:.1f}" for c in cells)
            + f" | {r['wall_seconds']:.0f} | {r['peak_memory_mb']:.0f} | {r['trainable_params']:,} | {r['params_kept']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    cfg = parse_config(BenchConfig, argv, description=__doc__.splitlines()[0])
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    unknown = sorted(set(cfg.methods) - {"full", "lora", "adalora", "sucg"})
    if unknown:
        raise SystemExit(f"bench_adapters: unknown method(s) {', '.join(unknown)}")
    started = time.perf_counter()
    train = load_dialogues("sgd", sgd_dir(cfg), "train", cfg.source_services + cfg.target_services)
    initial = build_initial_model(cfg, train, out / "initial")
    print(f"[{time.perf_counter() - started:.0f} s] base: full fine-tuning on {', '.join(cfg.source_services)}", flush=True)
    base_cfg = sft_config(cfg, str(initial), cfg.source_services, cfg.base_steps, cfg.base_lr, AdapterConfig(type="full"),
                          out / "base")
    run_sft(base_cfg, out / "base.log")
    base = out / "base" / "best"

    tests = scored_dialogues(cfg)
    official = SgdEvaluator.from_split(sgd_dir(cfg), "test")
    rows = []
    for method in cfg.methods:
        print(f"[{time.perf_counter() - started:.0f} s] {method} on {', '.join(cfg.target_services)}", flush=True)
        adapter = dataclasses.replace(cfg.adapter, type=method)
        summary = run_sft(sft_config(cfg, str(base), cfg.target_services, cfg.steps, cfg.lr, adapter, out / method),
                          out / f"{method}.log")
        result, strict, kept = score_dst(out / method / "best", tests, official)
        rows.append({
            "method": method, "jga": result["all"]["joint_goal_accuracy"], "aga": result["all"]["average_goal_accuracy"],
            "vas": result["volatility"], "per_service": result["per_service"], "frames": result["all"]["frames"],
            "strict_jga": strict["joint_goal_accuracy"], "strict_slot_accuracy": strict["slot_accuracy"],
            "strict_vas": strict["volatility"], "strict_per_service": strict["per_service"], "turns": strict["turns"],
            "wall_seconds": summary["wall_seconds"], "peak_memory_mb": summary["peak_memory_mb"],
            "trainable_params": summary["trainable_params"], "params_kept": kept,
        })
    print(f"[{time.perf_counter() - started:.0f} s] timing AdaLoRA and SUCG steps", flush=True)
    targets = [d for d in train if set(d.services) <= set(cfg.target_services)]
    per_step = time_steps(cfg, base, targets)

    report = [table(rows), "",
              "Per-service JGA (official): " + "; ".join(f"{r['method']} " + ", ".join(f"{s} {v:.1f}" for s, v in r["per_service"].items())
                                                for r in rows),
              "", f"Seconds per training step over {cfg.timing_steps} interleaved steps: "
              + ", ".join(f"{name} {value:.3f}" for name, value in per_step.items())
              + f"; SUCG / AdaLoRA = {per_step['sucg'] / per_step['adalora']:.2f} "
              f"(every step: {per_step['sucg every step'] / per_step['adalora']:.2f})",
              f"Total bench time {time.perf_counter() - started:.0f} s."]
    print("\n".join(report))
    (out / "results.json").write_text(json.dumps({"config": dataclasses.asdict(cfg), "rows": rows, "seconds_per_step": per_step},
                                                 indent=2))
    (out / "results.md").write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
