"""Does RL improve on SFT? Seed 004's end-to-end benchmark (Tables 2-3) at the scale of one machine.

    python scripts/bench_learning.py                  # --scale cpu: tiny T5 from scratch, ~80-100 minutes on 2 cores
    python scripts/bench_learning.py --scale gpu      # the same pipeline with a T5-small-sized model
    TQDM_DISABLE=1 nohup python scripts/bench_learning.py > runs/bench.log &  # unattended: one line per stage

For each corpus (MultiWOZ 2.1 low-resource, In-Car): SFT, then RL from that
same SFT checkpoint once per reward (tod, the -Rg / -Ru ablations, none: the KL penalty and any SFT term alone)
and seed, then every model greedily generates the test split once and that
one generation is scored by every evaluator (standard and legacy MultiWOZ
evaluators and JGA; In-Car Match / SuccF1 / BLEU). The test split only
scores: SFT picks its checkpoint on dev loss, RL on the dev Combined score.

Everything lands in `output_dir`: one folder per run, `results.json` (every
figure, stage timings, the machine), `results.md` (the tables) and the reward
and KL curves as PNG. A finished stage is not run again, so an interrupted
benchmark continues where it stopped; delete the folder to start over.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import yaml

from todrl.config import from_dict, parse_config, save_config
from todrl.data import load_dialogues, span_vocabulary
from todrl.data.splits import DataConfig
from todrl.evaluate import Predictions
from todrl.evaluate.corpus import CorpusScorer, ScoringOptions, figures
from todrl.evaluate.generate import predict_checkpoint
from todrl.evaluate.predictions import dump_predictions, load_predictions
from todrl.rl.config import RLConfig
from todrl.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
SCALES = ("cpu", "gpu")
Corpus = Literal["multiwoz21", "incar"]
CORPORA: tuple[str, ...] = get_args(Corpus)
SCORED = {
    "multiwoz21": ("standard", "dst", "legacy", "legacy_gold_db"),
    "incar": ("incar", "incar_galaxy", "incar_todrl", "dst"),
}
"""Every definition each corpus's test generations are scored by (`todrl.evaluate.corpus`)."""
ABLATION = {"tod": "RL, Rtod", "understanding": "RL, Ru only (-Rg)", "generation": "RL, Rg only (-Ru)", "none": "RL, no task reward"}
"""Row names of seed 004's Table 3 for each `--reward` of todrl.rl."""


@dataclass
class CorpusBench:
    """One corpus: SFT, then RL from its checkpoint for every reward and seed, each scored on the test split."""

    sft: SFTConfig = field(default_factory=SFTConfig)
    rl: RLConfig = field(default_factory=RLConfig)
    """Shared by the RL runs; the script sets model, dataset, splits, reward, seed and output_dir."""
    rewards: list[str] = field(default_factory=lambda: list(ABLATION))
    test_split: str = "test"
    test_dialogues: int = 0
    """Score only the first N test dialogues (0 = all; smoke runs)."""
    max_new_tokens: int = 112
    """Decoding length at test time: just above the longest training target in tokens."""
    num_beams: int = 1
    """Beam search width at test time (1 = greedy); RL still selects its checkpoint on greedy dev generations."""
    planned_minutes: dict[str, float] = field(default_factory=dict)
    """Budget per stage kind (sft, rl, test): measured wall times of this machine, printed as the plan."""

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise ValueError(f"num_beams must be at least 1, got {self.num_beams}")
        bad = sorted(set(self.rewards) - set(ABLATION))
        if bad:
            raise ValueError(f"rewards: unknown reward(s) {bad}; choose from {', '.join(ABLATION)}")


@dataclass
class BenchConfig:
    """The learning benchmark: which corpora, which RL seeds, and where each corpus's pipeline is configured."""

    output_dir: str = "runs/bench"
    """Where every run, results.json and the tables land."""
    corpora: list[Corpus] = field(default_factory=lambda: list(CORPORA))
    """Corpora to run, in this order."""
    multiwoz21: str = "configs/bench_multiwoz21_cpu.yaml"
    """YAML of the MultiWOZ pipeline (a CorpusBench: sft, rl, rewards, ...); relative paths start at the repository."""
    incar: str = "configs/bench_incar_cpu.yaml"
    """YAML of the In-Car pipeline, like multiwoz21."""
    seeds: list[int] = field(default_factory=lambda: [1, 2, 3])
    """RL seeds of every reward (SFT runs once, with its own seed)."""
    rewards: list[str] | None = None
    """RL rewards of every corpus, in place of each corpus file's list (`--rewards tod`: no ablations)."""
    eval_batch_size: int = 128
    """Batch size of the generation of each test split."""
    rescore: bool = False
    """Score each finished model's saved test predictions again with the current evaluators (no generation):
    how every figure is brought up to date when an evaluator changes."""
    threads: int = 1
    """torch CPU threads: 1 is fastest on a shared 2-core machine (2 under contention is ~10x slower)."""

    def __post_init__(self) -> None:
        unknown = sorted(set(self.corpora) - set(CORPORA))
        if unknown:
            raise ValueError(f"unknown corpora {unknown}; choose from {', '.join(CORPORA)}")
        if not self.seeds:
            raise ValueError("seeds: give at least one RL seed")
        bad = sorted(set(self.rewards or ()) - set(ABLATION))
        if bad:
            raise ValueError(f"rewards: unknown reward(s) {bad}; choose from {', '.join(ABLATION)}")

    def corpus(self, name: str) -> CorpusBench:
        """The pipeline of one corpus, read from its YAML file."""
        path = Path(getattr(self, name))
        path = path if path.is_absolute() or path.exists() else ROOT / path
        if not path.is_file():
            raise FileNotFoundError(f"{name}: no corpus config at {path}")
        bench = from_dict(CorpusBench, yaml.safe_load(path.read_text()) or {}, str(path))
        if bench.sft.dataset != name:
            raise ValueError(f"{path}: sft.dataset is {bench.sft.dataset!r}; this file configures {name!r}")
        return bench if self.rewards is None else dataclasses.replace(bench, rewards=list(self.rewards))


def parse_args(argv: list[str] | None = None) -> BenchConfig:
    """`--scale` picks configs/bench_learning_<scale>.yaml; `--config` and field flags override it."""
    scale_parser = argparse.ArgumentParser(add_help=False)
    scale_parser.add_argument("--scale", choices=SCALES, default="cpu")
    known, rest = scale_parser.parse_known_args(argv)
    if "--config" not in rest:
        rest = ["--config", str(ROOT / "configs" / f"bench_learning_{known.scale}.yaml"), *rest]
    return parse_config(BenchConfig, rest, description=__doc__.splitlines()[0])


# ----------------------------------------------------------------------------- stages


@dataclass
class Stage:
    name: str
    kind: str
    """sft | rl | test: the key of `planned_minutes`."""
    planned: float
    seconds: float | None = None
    skipped: bool = False


class Stages:
    """The plan, printed up front, and each stage's measured wall time against it.

    Wall times are kept in `stage_seconds.json`, so a benchmark finished over
    several invocations, or by several at once (`--seeds 1` and `--seeds 2,3`
    on two cores, then one more to gather), still reports what every stage cost.
    """

    def __init__(self, benches: dict[str, CorpusBench], seeds: list[int], times_file: Path) -> None:
        self.times_file = times_file
        recorded = json.loads(times_file.read_text()) if times_file.is_file() else {}
        self.stages: dict[str, Stage] = {}
        for corpus, bench in benches.items():
            rl_runs = [f"{corpus}/rl_{reward}_s{seed}" for reward in bench.rewards for seed in seeds]
            for name, kind in [(f"{corpus}/sft", "sft"), (f"{corpus}/sft test", "test")] + [
                (n, k) for run in rl_runs for n, k in ((run, "rl"), (f"{run} test", "test"))
            ]:
                self.stages[name] = Stage(name, kind, bench.planned_minutes.get(kind, 0.0), recorded.get(name))
        self.start = time.perf_counter()

    def print_plan(self) -> None:
        total = sum(s.planned for s in self.stages.values())
        print(f"plan: {len(self.stages)} stages, {total:.0f} minutes planned", flush=True)
        by_kind: dict[tuple[str, str], list[Stage]] = {}
        for stage in self.stages.values():
            by_kind.setdefault((stage.name.split("/")[0], stage.kind), []).append(stage)
        for (corpus, kind), stages in by_kind.items():
            print(f"  {corpus:10s} {kind:4s} x{len(stages):2d}  {stages[0].planned:5.1f} min each", flush=True)

    def run(self, name: str, done: bool, work) -> Any:
        """Run `work()` unless `done`, timing it against the plan."""
        stage = self.stages[name]
        if done:
            stage.skipped = True
            print(f"[{self.elapsed()}] {name}: done earlier, skipped", flush=True)
            return work(skip=True)
        print(f"[{self.elapsed()}] {name}: starting (planned {stage.planned:.1f} min)", flush=True)
        began = time.perf_counter()
        result = work(skip=False)
        stage.seconds = time.perf_counter() - began
        print(f"[{self.elapsed()}] {name}: {stage.seconds / 60:.1f} min", flush=True)
        self.record(name)
        return result

    def record(self, name: str) -> None:
        """Add one stage's time to the file, keeping what other invocations (on other cores) wrote meanwhile."""
        recorded = json.loads(self.times_file.read_text()) if self.times_file.is_file() else {}
        recorded[name] = self.stages[name].seconds
        partial = self.times_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(recorded, indent=1))
        partial.replace(self.times_file)

    def elapsed(self) -> str:
        seconds = int(time.perf_counter() - self.start)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def as_dict(self) -> dict[str, Any]:
        return {name: dataclasses.asdict(stage) for name, stage in self.stages.items()}


def fresh_directory(path: Path) -> Path:
    """A run without its summary was interrupted: start it over rather than append to its logs."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_sft(cfg: SFTConfig, out: Path, skip: bool) -> dict:
    from todrl.sft import train

    if not skip:
        fresh_directory(out)
        train(dataclasses.replace(cfg, output_dir=str(out)))
    return json.loads((out / "summary.json").read_text())


def rl_config(bench: CorpusBench, sft_dir: Path, reward: str, seed: int, out: Path) -> RLConfig:
    """The shared RL settings, started from the SFT run, on its corpus and splits (so RL selects on SFT's dev slice)."""
    splits = {f.name: getattr(bench.sft, f.name) for f in dataclasses.fields(DataConfig)}
    return dataclasses.replace(bench.rl, **splits, model=str(sft_dir), reward=dataclasses.replace(bench.rl.reward, type=reward),
                               seed=seed, output_dir=str(out))


def run_rl(cfg: RLConfig, skip: bool) -> dict:
    from todrl.rl.trainer import train

    out = Path(cfg.output_dir)
    if not skip:
        fresh_directory(out)
        train(cfg)
    return json.loads((out / "summary.json").read_text())


# ----------------------------------------------------------------------------- test-set scoring


class TestSet:
    """A corpus's test dialogues and every definition it is scored by, applied to each model's one generation."""

    def __init__(self, corpus: str, bench: CorpusBench) -> None:
        self.corpus = corpus
        self.dialogues = load_dialogues(corpus, bench.sft.data_dir, bench.test_split)
        if bench.test_dialogues:
            self.dialogues = self.dialogues[: bench.test_dialogues]
        # MultiWOZ's legacy evaluator queries the DB with the generated state (as PPTOD reports); the gold one beside.
        self.scorer = CorpusScorer(corpus, self.dialogues, bench.sft.data_dir, bench.test_split, SCORED[corpus],
                                   ScoringOptions(db_state="generated"))
        self.vocabulary = span_vocabulary(corpus, bench.sft.data_dir)

    def score(self, predictions: Predictions, source: Path) -> dict[str, Any]:
        return self.scorer.score(predictions, source)


def test_scores(checkpoint: Path, tests: TestSet, bench: CorpusBench, batch_size: int, skip: bool,
                rescore: bool = False) -> dict[str, Any]:
    """Generate the test split once with `checkpoint` and score it; cached beside the checkpoint.

    With `rescore`, a model already generated is scored again from its saved
    predictions, so a changed evaluator needs no new generation.
    """
    run_dir = checkpoint.parent
    scores_file = run_dir / "test_scores.json"
    predictions_file = run_dir / f"predictions_{bench.test_split}.json"
    if skip and not (rescore and predictions_file.is_file()):
        return json.loads(scores_file.read_text())
    if skip:
        generation_seconds = json.loads(scores_file.read_text())["generation_seconds"]
        predictions = load_predictions(predictions_file)
    else:
        began = time.perf_counter()
        predictions = predict_checkpoint(checkpoint, tests.dialogues, tests.vocabulary, batch_size=batch_size,
                                         max_new_tokens=bench.max_new_tokens, num_beams=bench.num_beams)
        generation_seconds = time.perf_counter() - began
        dump_predictions(predictions, predictions_file)
    scores = {"checkpoint": str(checkpoint), "generation_seconds": generation_seconds,
              "turns": sum(len(turns) for turns in predictions.values()), **tests.score(predictions, predictions_file)}
    scores_file.write_text(json.dumps(scores, indent=2))
    return scores


def chosen_checkpoint(run_dir: Path) -> Path:
    """best/ (selected on dev), else last/."""
    return run_dir / "best" if (run_dir / "best").is_dir() else run_dir / "last"


# ----------------------------------------------------------------------------- figures


def headline(corpus: str, scores: dict[str, Any]) -> dict[str, float | None]:
    """The figures of seed 004's tables for one model, under every definition the corpus is scored by."""
    return figures({name: scores[name] for name in SCORED[corpus] if name in scores})


@dataclass
class Row:
    """Mean and standard deviation over seeds of each figure (one value and no deviation for SFT)."""

    model: str
    seeds: int
    mean: dict[str, float]
    std: dict[str, float | None]


def aggregate(model: str, runs: list[dict[str, float | None]]) -> Row:
    keys = [k for k in runs[0] if all(r[k] is not None for r in runs)]
    mean = {k: statistics.fmean(r[k] for r in runs) for k in keys}
    std = {k: statistics.stdev(r[k] for r in runs) if len(runs) > 1 else None for k in keys}
    return Row(model, len(runs), mean, std)


def cell(row: Row, key: str) -> str:
    if key not in row.mean:
        return "n/a"
    std = row.std[key]
    return f"{row.mean[key]:.2f}" + ("" if std is None else f" ± {std:.2f}")


TABLES = {
    "multiwoz21": [
        ("standard evaluator", ["inform", "success", "bleu", "combined", "jga", "jga_exact"],
         ["Inform", "Success", "BLEU", "Comb", "JGA (mwzeval)", "JGA exact"]),
        ("legacy evaluator (UBAR/PPTOD, as seed 004 reports; DB queried with the generated state)",
         ["legacy_inform", "legacy_success", "legacy_bleu", "legacy_combined"], ["Inform", "Success", "BLEU", "Comb"]),
    ],
    "incar": [
        ("LABES's metric.py (LABES's In-Car table; the default)", ["match", "success_f1", "bleu", "combined", "jga"],
         ["Match", "SuccF1", "BLEU", "Comb", "JGA"]),
        ("GALAXY's eval.py (fuzzy Match; GALAXY's and SPACE-3's tables)", ["galaxy_match", "galaxy_success_f1", "galaxy_bleu",
         "galaxy_combined"], ["Match", "SuccF1", "BLEU", "Comb"]),
        ("todrl's own (every dialogue, requested slots)", ["todrl_match", "todrl_success_f1", "todrl_bleu",
         "todrl_combined"], ["Match", "SuccF1", "BLEU", "Comb"]),
    ],
}


def markdown_tables(corpus: str, rows: list[Row]) -> str:
    parts = []
    for title, keys, headers in TABLES[corpus]:
        lines = [f"**{corpus}, {title}** (mean ± std over RL seeds)", "",
                 "| model | seeds | " + " | ".join(headers) + " |", "|---|---|" + "---|" * len(headers)]
        lines += [f"| {row.model} | {row.seeds} | " + " | ".join(cell(row, k) for k in keys) + " |" for row in rows]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def verdict(sft: Row, rl: Row, key: str) -> dict[str, Any]:
    """Done-criterion: the mean over seeds beats the SFT start by more than the seeds' standard deviation."""
    gain = rl.mean[key] - sft.mean[key]
    std = rl.std[key] or 0.0
    return {"metric": key, "sft": sft.mean[key], "rl_mean": rl.mean[key], "rl_std": rl.std[key], "gain": gain,
            "improves": gain > std}


def read_metrics(run_dir: Path) -> list[dict[str, float]]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


SMOOTHING = 8
"""Iterations averaged in the per-batch curves: one batch of 16 episodes is too noisy to show a trend."""


def moving_mean(points: list[tuple[int, float]], window: int) -> list[tuple[int, float]]:
    """Trailing mean over the last `window` points (fewer at the start)."""
    values = [v for _, v in points]
    return [(x, statistics.fmean(values[max(0, i + 1 - window) : i + 1])) for i, (x, _) in enumerate(points)]


def plot_curves(corpus: str, curves: dict[str, list[list[dict[str, float]]]], path: Path) -> None:
    """Training reward, dev reward and KL per iteration: one colour per reward, one line per seed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("env/task_reward", f"rollout task reward (sampled; mean of {SMOOTHING} iterations)"),
              ("objective/kl", f"KL to SFT (nats / episode; mean of {SMOOTHING})"),
              ("objective/kl_coef", "KL coefficient beta"), ("eval/combined", "dev Combined (greedy)")]
    figure, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for colour, (reward, runs) in enumerate(curves.items()):
        for seed_index, metrics in enumerate(runs):
            for axis, (key, _) in zip(axes, panels):
                points = [(m["iteration"], m[key]) for m in metrics if key in m]
                if key in ("env/task_reward", "objective/kl"):
                    points = moving_mean(points, SMOOTHING)
                if points:
                    axis.plot(*zip(*points), color=f"C{colour}", alpha=0.8, lw=1.2,
                              label=ABLATION[reward] if seed_index == 0 else None, marker="." if key.startswith("eval") else None)
    for axis, (_, title) in zip(axes, panels):
        axis.set_title(title, fontsize=9)
        axis.set_xlabel("iteration")
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"{corpus}: RL from the SFT checkpoint, one line per seed", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


# ----------------------------------------------------------------------------- the benchmark


def machine() -> dict[str, Any]:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bench_corpus(corpus: str, bench: CorpusBench, cfg: BenchConfig, stages: Stages, out: Path) -> dict[str, Any]:
    tests = TestSet(corpus, bench)
    sft_dir = out / corpus / "sft"
    sft_summary = stages.run(f"{corpus}/sft", (sft_dir / "summary.json").is_file(),
                             lambda skip: run_sft(bench.sft, sft_dir, skip))
    sft_scores = stages.run(f"{corpus}/sft test", (sft_dir / "test_scores.json").is_file(),
                            lambda skip: test_scores(chosen_checkpoint(sft_dir), tests, bench, cfg.eval_batch_size, skip,
                                                        cfg.rescore))
    runs: dict[str, list[dict[str, Any]]] = {}
    for reward in bench.rewards:
        for seed in cfg.seeds:
            run_dir = out / corpus / f"rl_{reward}_s{seed}"
            name = f"{corpus}/rl_{reward}_s{seed}"
            rl_cfg = rl_config(bench, sft_dir, reward, seed, run_dir)
            summary = stages.run(name, (run_dir / "summary.json").is_file(), lambda skip, c=rl_cfg: run_rl(c, skip))
            scores = stages.run(f"{name} test", (run_dir / "test_scores.json").is_file(),
                                lambda skip, d=run_dir: test_scores(chosen_checkpoint(d), tests, bench, cfg.eval_batch_size,
                                                                   skip, cfg.rescore))
            runs.setdefault(reward, []).append({"seed": seed, "summary": summary, "scores": scores,
                                                "headline": headline(corpus, scores), "metrics": read_metrics(run_dir)})
    sft_row = aggregate("SFT", [headline(corpus, sft_scores)])
    rows = [sft_row] + [aggregate(ABLATION[reward], [r["headline"] for r in seeds]) for reward, seeds in runs.items()]
    curves_file = out / f"curves_{corpus}.png"
    if runs:
        plot_curves(corpus, {reward: [r["metrics"] for r in seeds] for reward, seeds in runs.items()}, curves_file)
    verdicts = []
    if "tod" in runs:
        keys = ["combined", "legacy_combined"] if corpus == "multiwoz21" else ["combined", "galaxy_combined", "todrl_combined"]
        verdicts = [verdict(sft_row, rows[1 + list(runs).index("tod")], key) for key in keys if key in sft_row.mean]
    return {"sft": {"summary": sft_summary, "scores": sft_scores, "headline": headline(corpus, sft_scores)},
            "rl": {reward: [{k: v for k, v in r.items() if k != "metrics"} for r in seeds] for reward, seeds in runs.items()},
            "rows": [dataclasses.asdict(row) for row in rows], "tables": markdown_tables(corpus, rows),
            "verdicts": verdicts, "curves": str(curves_file) if runs else None, "test_dialogues": len(tests.dialogues)}


def run(cfg: BenchConfig) -> dict[str, Any]:
    """The whole benchmark; returns (and writes) the results."""
    torch.set_num_threads(cfg.threads)
    benches = {corpus: cfg.corpus(corpus) for corpus in cfg.corpora}
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    for corpus, bench in benches.items():
        save_config(bench, out / f"config_{corpus}.yaml")
    stages = Stages(benches, cfg.seeds, out / "stage_seconds.json")
    stages.print_plan()
    results: dict[str, Any] = {"command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "machine": machine()}
    for corpus, bench in benches.items():
        results[corpus] = bench_corpus(corpus, bench, cfg, stages, out)
    results["stages"] = stages.as_dict()
    results["wall_seconds"] = sum(s.seconds or 0.0 for s in stages.stages.values())
    (out / "results.json").write_text(json.dumps(results, indent=2))
    report = [results[c]["tables"] for c in cfg.corpora]
    for corpus in cfg.corpora:
        for v in results[corpus]["verdicts"]:
            report.append(f"{corpus} {v['metric']}: SFT {v['sft']:.2f} -> RL tod {v['rl_mean']:.2f}"
                          + ("" if v["rl_std"] is None else f" ± {v['rl_std']:.2f}")
                          + f" (gain {v['gain']:+.2f}: {'more' if v['improves'] else 'not more'} than the seeds' std)")
    report.append(f"wall time of all stages: {results['wall_seconds'] / 60:.1f} min "
                  f"(planned {sum(s.planned for s in stages.stages.values()):.0f} min)")
    (out / "results.md").write_text("\n\n".join(report) + "\n")
    print("\n\n".join(report), flush=True)
    return results


def main(argv: list[str] | None = None) -> None:
    cfg = parse_args(argv)
    try:
        run(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"bench_learning: {err}")


if __name__ == "__main__":
    main()
