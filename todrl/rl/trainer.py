"""PPO and NLPO fine-tuning of an SFT policy with token-level TOD rewards: `python -m todrl.rl`.

Each dataset turn is one episode: the policy writes belief state, act and
response for the turn's context, and every token earns the task reward it
adds (seed 004, Eq. 2-4) minus beta times its log-ratio to the frozen SFT
policy (Eq. 5), with beta adapted after each batch (Eq. 6-7).  The loop reads
top to bottom: setup, then per iteration rollout -> advantages -> PPO epochs
-> KL controller -> mask re-sync -> logging, evaluation and checkpoints.

Every model pass runs in eval mode (no dropout), so the log-probs and values
kept while sampling agree, up to float rounding, with what the first PPO
epoch recomputes: the first ratios are 1.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.distributed.fsdp import register_fsdp_forward_method
from accelerate.utils import set_seed
from rewards import Vocabulary
from tqdm.auto import tqdm

from todrl.adapters import after_optimizer_step, orthogonality_loss
from todrl.batching import encode_target, pad_rows
from todrl.checkpoint import load_resumable, save_checkpoint
from todrl.config import save_config
from todrl.health import check_skipped
from todrl.data import span_vocabulary
from todrl.format import Example
from todrl.generation import pad_sources
from todrl.instruct import subtask_config
from todrl.models import is_seq2seq
from todrl.rl.build import assemble, build_policy, contexts, episode_indices
from todrl.rl.config import RLConfig
from todrl.rl.evaluation import DevEvaluation
from todrl.rl.kl import kl_controller
from todrl.rl.nlpo import MaskPolicy
from todrl.rl.ppo import entropy, explained_variance, gae, masked_mean, masked_whiten, policy_loss, token_log_probs, value_loss
from todrl.rl.reference import Reference
from todrl.rl.rollout import Rollout, StepDecoder, StopRule, sample
from todrl.rl.state import allocator_state, load_allocator_state, load_trainable_state, trainable_state
from todrl.rl.task_reward import check_gold_states, gold_of, task_rewards
from todrl.rl.value import ActorCritic
from todrl.run_directory import claim, read_log
from todrl.sharding import check_sharding, full_state_dict, is_sharded, make_accelerator, stop_rule
from todrl.summary import Stopwatch


class Timings:
    """Wall time per phase of an iteration (what scripts/bench_rl.py reports)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def add(self, other: Timings) -> None:
        for phase, seconds in other.seconds.items():
            self.seconds[phase] += seconds

    @contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] += time.perf_counter() - start


# ----------------------------------------------------------------------------- rollout


def collect(agent: ActorCritic, reference: Reference, mask_policy: MaskPolicy | None, tokenizer, examples: list[Example],
            cfg: RLConfig, vocabulary: Vocabulary, kl_coef: float, generator: torch.Generator,
            timings: Timings, finished: StopRule) -> tuple[Rollout, dict[str, float]]:
    """Sample one batch of episodes and turn it into PPO's training tensors; `finished` ends the sampling loop."""
    policy = agent.policy
    device = next(policy.parameters()).device
    batch = pad_sources(tokenizer, [e.source for e in examples], is_seq2seq(policy), cfg.max_source_length, device)
    query, query_mask = batch["input_ids"], batch["attention_mask"]
    with timings("generation"):
        masker = None
        if mask_policy is not None:
            masker = mask_policy.masker(query, query_mask, cfg.top_p, keep_ids=[tokenizer.eos_token_id])
        decoder = StepDecoder(policy, query, query_mask, keep_hidden=agent.value_model is None, prepack=cfg.prepack)
        samples = sample(decoder, cfg.max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, cfg.top_k, masker,
                         generator, finished)
    response, mask, action_mask, logprobs = samples.response, samples.response_mask, samples.action_mask, samples.logprobs
    with timings("values"), torch.no_grad():
        values = agent.values(query, query_mask, response, mask) if samples.hidden is None else agent.value_head(samples.hidden)
    with timings("reward"):
        earned = task_rewards(tokenizer, response, mask, [gold_of(e, cfg.reward) for e in examples],
                              [subtask_config(cfg.reward, e.subtask) for e in examples], cfg.reward_mode, vocabulary)
    with timings("reference"):
        ref_logprobs = reference.log_probs(query, query_mask, response, mask)
    with timings("advantages"):
        # The penalty compares the policy's own distribution with the reference: NLPO's renormalization
        # (a constant -log 0.9 per token at p=0.9) would otherwise count as drift before any update.
        kl = (samples.unmasked_logprobs - ref_logprobs) * mask
        rewards = (earned.per_token - kl_coef * kl) * mask
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.norm_adv:
            advantages = masked_whiten(advantages, mask)
    rollout = Rollout(query, query_mask, response, mask, logprobs, values, advantages, returns, action_mask)
    if cfg.sft_coef > 0:
        rollout.target, rollout.target_mask = gold_targets(tokenizer, examples, cfg.max_new_tokens, device)
    stats = {
        "env/task_reward": earned.final.mean().item(),
        "env/reward_understanding": earned.parts["understanding"].mean().item(),
        "env/reward_generation": earned.parts["generation"].mean().item(),
        "env/reward_tod": earned.parts["tod"].mean().item(),
        "env/shaped_return": rewards.sum(-1).mean().item(),
        "env/response_length": mask.sum(-1).float().mean().item(),
        "objective/kl": kl.sum(-1).mean().item(),
        "objective/kl_coef": kl_coef,
        "ppo/explained_variance": explained_variance(values, returns, mask).item(),
    }
    if action_mask is not None:
        stats["nlpo/mask_size"] = masked_mean(action_mask.sum(-1).float(), mask).item()
    return rollout, stats


def gold_targets(tokenizer, examples: list[Example], max_length: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Gold target ids, encoded as SFT encodes them, right-padded, and their mask."""
    rows = [encode_target(tokenizer, e.target, max_length) for e in examples]
    return pad_rows(rows, tokenizer.pad_token_id).to(device), pad_rows([[1] * len(r) for r in rows], 0).to(device)


# ----------------------------------------------------------------------------- update


@dataclass
class Losses:
    loss: torch.Tensor
    pg_loss: torch.Tensor
    v_loss: torch.Tensor
    entropy: torch.Tensor
    orth_loss: torch.Tensor
    sft_loss: torch.Tensor
    clipfrac: torch.Tensor
    approx_kl: torch.Tensor


def ppo_losses(agent, policy, batch: Rollout, cfg: RLConfig) -> Losses:
    logits, values = agent(batch.query, batch.query_mask, batch.response, batch.response_mask)
    logprobs = token_log_probs(logits, batch.response, batch.action_mask)
    pg = policy_loss(logprobs, batch.logprobs, batch.advantages, batch.response_mask, cfg.clip_range)
    v_loss = value_loss(values, batch.values, batch.returns, batch.response_mask, cfg.clip_range_vf)
    with torch.set_grad_enabled(cfg.ent_coef > 0 and torch.is_grad_enabled()):  # logged only, unless it is in the loss
        ent = entropy(logits, batch.response_mask, batch.action_mask)
    orth = orthogonality_loss(policy)
    loss = pg.pg_loss + cfg.vf_coef * v_loss - cfg.ent_coef * ent + orth
    sft = torch.zeros_like(loss)
    if cfg.sft_coef > 0:
        # Outside DDP's forward, but in the same backward: every parameter's gradient is complete before it is reduced.
        gold = getattr(agent, "module", agent).gold_logits(batch.query, batch.query_mask, batch.target, batch.target_mask)
        sft = masked_mean(-token_log_probs(gold, batch.target), batch.target_mask)
        loss = loss + cfg.sft_coef * sft
    return Losses(loss, pg.pg_loss, v_loss, ent, orth, sft, pg.clipfrac, pg.approx_kl)


def ppo_update(agent, optimizer, rollout: Rollout, cfg: RLConfig, accelerator: Accelerator, first_slot: int,
               generator: torch.Generator, say) -> dict[str, float]:
    """Several epochs of minibatch PPO on one rollout.

    Optimizer-step slots are numbered in advance (`first_slot` + k) so that
    AdaLoRA's schedule sees the real step count even when an update is
    skipped; a non-finite loss or gradient skips its step on every process and
    says so.
    """
    unwrapped = accelerator.unwrap_model(agent)
    policy = unwrapped.policy
    agent.train(cfg.gradient_checkpointing)  # transformers checkpoints only in training mode; dropout is off (build)
    records: dict[str, list[float]] = defaultdict(list)
    slot, skipped, epochs_run = first_slot, 0, 0
    batch_size = rollout.response.shape[0]
    for epoch in range(cfg.ppo_epochs):
        epochs_run += 1
        order = torch.randperm(batch_size, generator=generator)
        epoch_kl = []
        for index, start in enumerate(range(0, batch_size, cfg.minibatch_size)):
            slot += 1
            minibatch = rollout.select(order[start : start + cfg.minibatch_size])
            losses = ppo_losses(agent, policy, minibatch, cfg)
            finite = accelerator.reduce(torch.isfinite(losses.loss).float(), reduction="mean").item() == 1.0
            if not finite:
                skipped += 1
                say(f"epoch {epoch}, minibatch {index}: non-finite loss (pg {losses.pg_loss.item():.4g}, "
                    f"value {losses.v_loss.item():.4g}); update skipped")
                continue
            accelerator.backward(losses.loss)
            # All parameters (frozen ones have no gradient): accelerate recognizes a sharded model's own list only.
            grad_norm = accelerator.clip_grad_norm_(agent.parameters(), cfg.max_grad_norm)
            if not torch.isfinite(grad_norm):
                optimizer.zero_grad()
                skipped += 1
                say(f"epoch {epoch}, minibatch {index}: non-finite gradient norm; update skipped")
                continue
            optimizer.step()
            after_optimizer_step(policy, slot, lambda mb=minibatch: ppo_losses(unwrapped, policy, mb, cfg).loss)
            optimizer.zero_grad()
            for name in ("loss", "pg_loss", "v_loss", "entropy", "orth_loss", "sft_loss", "clipfrac", "approx_kl"):
                records[name].append(getattr(losses, name).item())
            records["grad_norm"].append(grad_norm.item())
            epoch_kl.append(losses.approx_kl.item())
        if cfg.target_kl is not None and epoch_kl:
            mean_kl = accelerator.reduce(torch.tensor(sum(epoch_kl) / len(epoch_kl), device=accelerator.device), "mean").item()
            if mean_kl > cfg.target_kl:
                break
    agent.eval()
    stats = {f"ppo/{name}": sum(values) / len(values) for name, values in records.items()}
    stats.update({"ppo/skipped_updates": float(skipped), "ppo/epochs": float(epochs_run)})
    return stats


# ----------------------------------------------------------------------------- loop


def train(cfg: RLConfig) -> dict:
    """Run RL; returns the run's summary (also written to output_dir/summary.json)."""
    out = Path(cfg.output_dir)
    set_seed(cfg.seed)
    accelerator = make_accelerator(log_with="tensorboard", project_dir=str(out))
    check_sharding(accelerator, cfg.adapter.type, cfg.resume, cfg.quantize)
    with claim(out, cfg, "rl", accelerator.is_main_process):
        accelerator.wait_for_everyone()
        return run(cfg, accelerator, out)


def run(cfg: RLConfig, accelerator: Accelerator, out: Path) -> dict:
    stopwatch = Stopwatch()
    processes, rank = accelerator.num_processes, accelerator.process_index
    sharded = is_sharded(accelerator)
    train_examples, dev_dialogues = contexts(cfg)
    vocabulary = span_vocabulary(cfg.dataset, cfg.data_dir)
    check_gold_states(train_examples, vocabulary, f"{cfg.dataset} split {cfg.train_split!r}")
    evaluate = DevEvaluation.of_run(cfg, dev_dialogues, cfg.batch_size * 4, vocabulary, synced=sharded)
    iterations = math.ceil(cfg.episodes / (cfg.batch_size * processes))
    total_steps = iterations * cfg.ppo_epochs * cfg.minibatches

    policy, tokenizer, value_model = build_policy(cfg, out, total_steps, accelerator)
    models = assemble(policy, value_model, cfg.algo, accelerator.device)
    agent, reference, mask_policy = models.agent, models.reference, models.mask_policy
    optimizer = torch.optim.AdamW([p for p in agent.parameters() if p.requires_grad], lr=cfg.lr, eps=1e-5)
    kl_ctl = kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_rate)
    state = {"iteration": 0, "best_eval": None, "best_iteration": None, "skipped_updates": 0}
    if cfg.resume:
        state, training = load_resumable(out / "last")
        load_trainable_state(agent, training["trainable"], out / "last")
        optimizer.load_state_dict(training["optimizer"])
        kl_ctl.load_state_dict(training["kl"])
        load_allocator_state(policy, training["allocator"])
        if mask_policy is not None:
            mask_policy.load_state_dict(training["mask"])
        accelerator.print(f"resuming from {out / 'last'} at iteration {state['iteration']}")
    agent, optimizer = accelerator.prepare(agent, optimizer)
    register_fsdp_forward_method(agent, "run")  # a no-op unless sharded
    if mask_policy is not None:
        mask_policy.rebind()
    finished = stop_rule(accelerator)
    accelerator.init_trackers("rl", config={k: str(v) for k, v in asdict(cfg).items()})
    metrics_file = out / "metrics.jsonl"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        if cfg.resume and metrics_file.is_file():  # drop iterations logged after the checkpoint, which are about to rerun
            kept = [record for record in read_log(metrics_file) if record["iteration"] <= state["iteration"]]
            metrics_file.write_text("".join(json.dumps(record) + "\n" for record in kept))
        elif not cfg.resume:  # a fresh run in a used directory starts a fresh log
            metrics_file.write_text("")

    def checkpoint(name: str) -> None:
        """Written by the main process; every process calls it (a sharded run gathers the weights), and waits for it."""
        weights = full_state_dict(accelerator, agent)
        if accelerator.is_main_process:
            training = None if sharded else {
                "trainable": trainable_state(accelerator.unwrap_model(agent)), "optimizer": optimizer.state_dict(),
                "kl": kl_ctl.state_dict(), "allocator": allocator_state(policy),
                "mask": mask_policy.state_dict() if mask_policy is not None else None}
            policy_weights = None if weights is None else {
                name.removeprefix("policy."): tensor for name, tensor in weights.items() if name.startswith("policy.")}
            save_checkpoint(out / name, policy, tokenizer, {**state, "config": asdict(cfg)}, training, policy_weights)
        accelerator.wait_for_everyone()

    def dev_metrics() -> dict[str, float]:
        """Greedy dev generations, scored; empty on the processes that do not evaluate.

        Unsharded, the main process evaluates alone.  Sharded, no process can
        run the model alone, so every process generates the whole dev set in
        lock-step (`synced_gpus`) and scores it: the same wall time as one
        process evaluating, and no process needs the whole model at once.
        """
        if sharded:
            return accelerator.unwrap_model(agent).run(lambda: evaluate(policy, tokenizer))
        return evaluate(policy, tokenizer) if accelerator.is_main_process else {}

    def run_evaluation() -> dict[str, float]:
        """Saves best/ when the selection score (Combined, else dev task reward) improves."""
        metrics = dev_metrics()
        state.update(evaluated_iteration=state["iteration"], last_eval=metrics)
        score = DevEvaluation.selection_score(metrics) if metrics else None
        improved = score is not None and (state["best_eval"] is None or score > state["best_eval"])
        if improved:
            state.update(best_eval=score, best_iteration=state["iteration"])
        if accelerator.reduce(torch.tensor(float(improved), device=accelerator.device), "sum").item() > 0:
            checkpoint("best")
        accelerator.log(metrics, step=state["iteration"])
        return metrics

    progress = tqdm(total=iterations, initial=state["iteration"], desc=f"rl {cfg.algo}", disable=not accelerator.is_main_process)

    def say(message: str) -> None:
        progress.write(f"iteration {state['iteration'] + 1} (process {rank}): {message}", file=sys.stderr)

    if cfg.eval_every and state["iteration"] == 0 and (accelerator.is_main_process or sharded):
        # The SFT start: logged as the curves' reference, never a candidate for best/.
        state["start_eval"] = dev_metrics()
        accelerator.log(state["start_eval"], step=0)
        if accelerator.is_main_process:
            with metrics_file.open("a") as handle:
                handle.write(json.dumps({"iteration": 0, **state["start_eval"]}) + "\n")
    total_time = Timings()
    for iteration in range(state["iteration"], iterations):
        timings = Timings()
        # Seeded per iteration and process, so a resumed run samples and shuffles exactly as an uninterrupted one.
        seed = cfg.seed * 100_003 + iteration * processes + rank
        sampling = torch.Generator(device=accelerator.device).manual_seed(seed)
        chosen = episode_indices(iteration, len(train_examples), cfg.batch_size, processes, rank, cfg.seed)
        unwrapped = accelerator.unwrap_model(agent)
        rollout, stats = unwrapped.run(lambda: collect(unwrapped, reference, mask_policy, tokenizer,
                                                       [train_examples[i] for i in chosen], cfg, vocabulary,
                                                       kl_ctl.kl_coef, sampling, timings, finished))
        with timings("update"):
            first_slot = iteration * cfg.ppo_epochs * cfg.minibatches
            shuffling = torch.Generator().manual_seed(seed)
            stats.update(ppo_update(agent, optimizer, rollout, cfg, accelerator, first_slot, shuffling, say))
        names = sorted(stats)
        reduced = accelerator.reduce(torch.tensor([stats[k] for k in names], device=accelerator.device), "mean")
        stats = dict(zip(names, reduced.tolist()))
        kl_ctl.update(stats["objective/kl"])
        state["skipped_updates"] += round(stats["ppo/skipped_updates"])
        if mask_policy is not None and (iteration + 1) % cfg.mask_sync_every == 0:
            mask_policy.sync()
        state["iteration"] = iteration + 1
        stats.update({f"time/{phase}": seconds for phase, seconds in timings.seconds.items()})
        total_time.add(timings)
        accelerator.log(stats, step=state["iteration"])
        progress.update(1)
        progress.set_postfix(reward=f"{stats['env/task_reward']:.3f}", kl=f"{stats['objective/kl']:.3f}",
                             kl_coef=f"{kl_ctl.kl_coef:.4f}")
        if (cfg.eval_every and state["iteration"] % cfg.eval_every == 0) or state["iteration"] == iterations:
            stats.update(run_evaluation())
        if accelerator.is_main_process:
            with metrics_file.open("a") as handle:
                handle.write(json.dumps({"iteration": state["iteration"], **stats}) + "\n")
        if state["iteration"] % cfg.save_every == 0 and state["iteration"] < iterations:
            checkpoint("last")
    progress.close()
    if state.get("evaluated_iteration") != state["iteration"]:
        run_evaluation()
    checkpoint("last")

    summary = {**stopwatch.summary(accelerator.unwrap_model(agent)).as_dict(), "iterations": state["iteration"],
               "episodes": state["iteration"] * cfg.batch_size * processes, "best_eval": state["best_eval"],
               "best_iteration": state["best_iteration"], "start_eval": state.get("start_eval"), "final_eval": state["last_eval"],
               "best_checkpoint": str(out / "best"),
               "time_split": dict(total_time.seconds), "policy_weight_bytes": models.policy_bytes,
               "held_weight_bytes": models.held_bytes, "held_weight_ratio": models.held_bytes / models.policy_bytes,
               "skipped_updates": state["skipped_updates"], "updates": total_steps,
               "best_below_start": best_below_start(state)}
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        best = "none" if state["best_eval"] is None else f"{state['best_eval']:.4f} at iteration {state['best_iteration']}"
        accelerator.print(f"best dev score {best}; checkpoints in {out}/best and {out}/last")
        accelerator.print(stopwatch.summary(accelerator.unwrap_model(agent)).line())
        accelerator.print(models.memory_line())
        if summary["best_below_start"]:
            accelerator.print(f"warning: best/ scores {state['best_eval']:.4f}, below the SFT start's "
                              f"{DevEvaluation.selection_score(state['start_eval']):.4f}: RL did not improve on it here")
    accelerator.end_training()
    check_skipped(state["skipped_updates"], total_steps, f"lower lr ({cfg.lr}) or max_grad_norm")
    return summary


def best_below_start(state: dict) -> bool:
    """Whether the best dev score of the run lies below the SFT start's (best/ is never the start itself)."""
    start = DevEvaluation.selection_score(state["start_eval"]) if state.get("start_eval") else None
    return start is not None and state["best_eval"] is not None and state["best_eval"] < start
