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
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed
from rewards.core import REQUEST_SPANS
from tqdm.auto import tqdm

from todrl.adapters import AdapterConfig, after_optimizer_step, orthogonality_loss
from todrl.batching import encode_target, pad_rows
from todrl.checkpoint import load_state
from todrl.config import save_config
from todrl.data.splits import DataConfig
from todrl.format import Example
from todrl.generation import pad_sources
from todrl.models import is_seq2seq
from todrl.rl.build import DEFAULT_SFT, assemble, build_policy, contexts, episode_indices
from todrl.rl.evaluation import DevEvaluation
from todrl.rl.kl import kl_controller
from todrl.rl.nlpo import MaskPolicy
from todrl.rl.ppo import entropy, explained_variance, gae, masked_mean, masked_whiten, policy_loss, token_log_probs, value_loss
from todrl.rl.reference import Reference
from todrl.rl.rollout import Rollout, StepDecoder, sample
from todrl.rl.state import allocator_state, load_allocator_state, load_trainable_state, save_rl_checkpoint, trainable_state
from todrl.rl.task_reward import MODES, REWARDS, gold_of, task_rewards
from todrl.rl.value import ActorCritic
from todrl.summary import Stopwatch


@dataclass
class RLConfig(DataConfig):
    """PPO/NLPO fine-tuning of an SFT policy with token-level TOD rewards and an adaptive KL penalty."""

    model: str = DEFAULT_SFT
    """SFT run directory (its best/ checkpoint, else last/), a checkpoint directory, or a hub name."""
    max_contexts: int = 0
    """Use only the first N training turns as episodes (0 = all)."""
    eval_dialogues: int = 8
    """Dev dialogues generated greedily and scored at each evaluation (0 = all)."""
    output_dir: str = "runs/rl/default"

    algo: str = "nlpo"
    """ppo | nlpo (PPO sampling within the top-p set of a periodically re-synced mask policy)."""
    reward: str = "tod"
    """tod | understanding | generation | none (no task reward: the KL penalty and any SFT term alone, the control)."""
    reward_mode: str = "delta"
    """delta: each token earns the change of the prefix reward (sums to the final reward); cumulative: the prefix reward."""
    alpha: float = 1.0
    """Penalty sensitivity of the understanding reward (Eq. 2)."""
    beta: float = 1.0
    """Penalty sensitivity of the generation reward (Eq. 3)."""
    symmetric: bool = False
    """Also charge generated slot-values and requested slots that are not in the gold turn. The penalty as printed
    counts only what is missing, so over-generating costs nothing and a long run can drift there."""
    request_spans: str = "either"
    """Where a requested slot earns the generation reward: either span, each of act and response (averaged: seed
    004 scores both generation tasks with Eq. 3), or the response only. With "either", naming a slot in the act
    satisfies the request even when the response never gives it, which is what Success checks."""
    request_weight: float = 1.0
    """Weight of one requested slot against one belief pair in Rtod (1 = Eq. 4 as printed)."""
    offer_slots: list[str] = field(default_factory=list)
    """Slots that earn the generation reward like requested ones wherever the gold response gives them unasked
    (empty = Eq. 3 as printed). On MultiWOZ, [name, id, reference]: Inform counts a venue only once a response
    names it, Success wants the booking's reference, and users seldom ask for either."""
    kl_coef: float = 0.01
    """beta_0 of the KL penalty (Eq. 5); seed 004 uses 0.01."""
    kl_target: float | None = 1.0
    """Target KL per episode (nats, summed over tokens) of the adaptive beta (Eq. 6-7); None keeps beta fixed."""
    kl_rate: float = 0.2
    """K_beta of Eq. 7."""

    episodes: int = 512
    """Episodes (dataset turns) to roll out in total, over all processes."""
    batch_size: int = 8
    """Episodes per iteration and process."""
    minibatch_size: int = 4
    ppo_epochs: int = 5
    lr: float = 3e-4
    gamma: float = 0.99
    lam: float = 0.95
    clip_range: float = 0.2
    clip_range_vf: float | None = 0.2
    """Clip of the value update around the rollout's values; None = plain squared error."""
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 1.0
    norm_adv: bool = True
    """Whiten advantages over each batch's real tokens."""
    target_kl: float | None = None
    """Stop an iteration's PPO epochs once the approximate KL to the rollout policy exceeds this (None = never)."""
    top_k: int = 50
    """Sampling keeps the k most likely tokens (0 = all)."""
    top_p: float = 0.9
    """NLPO: the mask policy's top-p set that the policy may sample from."""
    mask_sync_every: int = 5
    """NLPO: copy the current policy into the mask policy every N iterations."""
    max_source_length: int = 256
    max_new_tokens: int = 160
    sft_coef: float = 0.0
    """Weight of the SFT loss (cross-entropy of the episodes' gold targets) added to the PPO loss, as in
    InstructGPT's PPO-ptx. The KL penalty holds the policy near SFT along its own samples; this term holds the
    likelihood of the gold turns that SFT was fitted to, which any step away from the SFT optimum lowers."""
    value_model: str = "head"
    """head: a linear critic on the policy's hidden states; separate: a second model (another copy of the weights)."""
    adapter: AdapterConfig = field(default_factory=lambda: AdapterConfig(type="lora"))
    """Trainable parameters: lora | adalora | sucg (the reference and mask policy then cost no model copy) or full."""
    eval_every: int = 10
    """Evaluate (and save best/) every N iterations; 0 = only at the end."""
    save_every: int = 10
    """Save last/ every N iterations (and at the end)."""
    seed: int = 42
    resume: bool = False
    """Continue from output_dir/last."""

    def __post_init__(self) -> None:
        choices = {"algo": ("ppo", "nlpo"), "reward": REWARDS, "reward_mode": MODES, "value_model": ("head", "separate"),
                   "request_spans": REQUEST_SPANS}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        positive = ("episodes", "batch_size", "minibatch_size", "ppo_epochs", "mask_sync_every", "max_new_tokens")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.minibatch_size > self.batch_size:
            raise ValueError(f"minibatch_size ({self.minibatch_size}) must not exceed batch_size ({self.batch_size})")
        if not (math.isfinite(self.sft_coef) and self.sft_coef >= 0.0):
            raise ValueError(f"sft_coef must be a finite number >= 0, got {self.sft_coef}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if not (0.0 <= self.gamma <= 1.0 and 0.0 <= self.lam <= 1.0):
            raise ValueError(f"gamma and lam must be in [0, 1], got {self.gamma}, {self.lam}")
        if self.target_kl is not None and self.adapter.type in ("adalora", "sucg"):
            raise ValueError(
                "target_kl (early stop of the PPO epochs) makes the number of optimizer steps unknown in advance, "
                f"but {self.adapter.type}'s rank schedule is laid out over it; use adapter lora or full, or target_kl None"
            )

    @property
    def reward_options(self) -> dict[str, float | bool | str]:
        return {"alpha": self.alpha, "beta": self.beta, "symmetric": self.symmetric, "request_spans": self.request_spans,
                "request_weight": self.request_weight}

    @property
    def minibatches(self) -> int:
        return math.ceil(self.batch_size / self.minibatch_size)


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
            cfg: RLConfig, beta: float, generator: torch.Generator, timings: Timings) -> tuple[Rollout, dict[str, float]]:
    """Sample one batch of episodes and turn it into PPO's training tensors."""
    policy = agent.policy
    device = next(policy.parameters()).device
    batch = pad_sources(tokenizer, [e.source for e in examples], is_seq2seq(policy), cfg.max_source_length, device)
    query, query_mask = batch["input_ids"], batch["attention_mask"]
    with timings("generation"):
        masker = None
        if mask_policy is not None:
            masker = mask_policy.masker(query, query_mask, cfg.top_p, keep_ids=[tokenizer.eos_token_id])
        decoder = StepDecoder(policy, query, query_mask, keep_hidden=agent.value_model is None)
        samples = sample(decoder, cfg.max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, cfg.top_k, masker,
                         generator)
    response, mask, action_mask, logprobs = samples.response, samples.response_mask, samples.action_mask, samples.logprobs
    with timings("values"), torch.no_grad():
        values = agent.values(query, query_mask, response, mask) if samples.hidden is None else agent.value_head(samples.hidden)
    with timings("reward"):
        task, final = task_rewards(tokenizer, response, mask, [gold_of(e, cfg.offer_slots) for e in examples],
                                   cfg.reward, cfg.reward_mode, **cfg.reward_options)
    with timings("reference"):
        ref_logprobs = reference.log_probs(query, query_mask, response, mask)
    with timings("advantages"):
        # The penalty compares the policy's own distribution with the reference: NLPO's renormalization
        # (a constant -log 0.9 per token at p=0.9) would otherwise count as drift before any update.
        kl = (samples.unmasked_logprobs - ref_logprobs) * mask
        rewards = (task - beta * kl) * mask
        advantages, returns = gae(rewards, values, mask, cfg.gamma, cfg.lam)
        if cfg.norm_adv:
            advantages = masked_whiten(advantages, mask)
    rollout = Rollout(query, query_mask, response, mask, logprobs, values, advantages, returns, action_mask)
    if cfg.sft_coef > 0:
        rollout.target, rollout.target_mask = gold_targets(tokenizer, examples, cfg.max_new_tokens, device)
    stats = {
        "env/task_reward": final.mean().item(),
        "env/shaped_return": rewards.sum(-1).mean().item(),
        "env/response_length": mask.sum(-1).float().mean().item(),
        "objective/kl": kl.sum(-1).mean().item(),
        "objective/kl_coef": beta,
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
    trainable = [p for p in agent.parameters() if p.requires_grad]
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
            grad_norm = accelerator.clip_grad_norm_(trainable, cfg.max_grad_norm)
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
    stats = {f"ppo/{name}": sum(values) / len(values) for name, values in records.items()}
    stats.update({"ppo/skipped_updates": float(skipped), "ppo/epochs": float(epochs_run)})
    return stats


# ----------------------------------------------------------------------------- loop


def train(cfg: RLConfig) -> dict:
    """Run RL; returns the run's summary (also written to output_dir/summary.json)."""
    stopwatch = Stopwatch()
    out = Path(cfg.output_dir)
    if cfg.resume and not (out / "last").is_dir():
        raise FileNotFoundError(f"--resume: no checkpoint at {out / 'last'} to continue from")
    set_seed(cfg.seed)
    accelerator = Accelerator(log_with="tensorboard", project_dir=str(out))
    processes, rank = accelerator.num_processes, accelerator.process_index
    train_examples, dev_dialogues = contexts(cfg)
    evaluate = DevEvaluation.of_run(cfg, dev_dialogues, cfg.batch_size * 4)
    iterations = math.ceil(cfg.episodes / (cfg.batch_size * processes))
    total_steps = iterations * cfg.ppo_epochs * cfg.minibatches

    policy, tokenizer, value_model = build_policy(cfg, out, total_steps, accelerator)
    models = assemble(policy, value_model, cfg.algo, accelerator.device)
    agent, reference, mask_policy = models.agent, models.reference, models.mask_policy
    optimizer = torch.optim.AdamW([p for p in agent.parameters() if p.requires_grad], lr=cfg.lr, eps=1e-5)
    kl_ctl = kl_controller(cfg.kl_coef, cfg.kl_target, cfg.kl_rate)
    state = {"iteration": 0, "best_eval": None, "best_iteration": None}
    if cfg.resume:
        state, training = load_state(out / "last")
        load_trainable_state(agent, training["trainable"], out / "last")
        optimizer.load_state_dict(training["optimizer"])
        kl_ctl.load_state_dict(training["kl"])
        load_allocator_state(policy, training["allocator"])
        if mask_policy is not None:
            mask_policy.load_state_dict(training["mask"])
        accelerator.print(f"resuming from {out / 'last'} at iteration {state['iteration']}")
    agent, optimizer = accelerator.prepare(agent, optimizer)
    accelerator.init_trackers("rl", config={k: str(v) for k, v in asdict(cfg).items()})
    metrics_file = out / "metrics.jsonl"
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        if cfg.resume and metrics_file.is_file():  # drop iterations logged after the checkpoint, which are about to rerun
            kept = [line for line in metrics_file.read_text().splitlines() if json.loads(line)["iteration"] <= state["iteration"]]
            metrics_file.write_text("".join(line + "\n" for line in kept))
        elif not cfg.resume:  # a fresh run in a used directory starts a fresh log
            metrics_file.write_text("")

    def checkpoint(name: str) -> None:
        """Written by the main process; every process calls it, and waits for it."""
        if accelerator.is_main_process:
            training = {"trainable": trainable_state(accelerator.unwrap_model(agent)), "optimizer": optimizer.state_dict(),
                        "kl": kl_ctl.state_dict(), "allocator": allocator_state(policy),
                        "mask": mask_policy.state_dict() if mask_policy is not None else None}
            save_rl_checkpoint(out / name, policy, tokenizer, {**state, "config": asdict(cfg)}, training)
        accelerator.wait_for_everyone()

    def run_evaluation() -> dict[str, float]:
        """On the main process; saves best/ when the selection score (Combined, else dev task reward) improves."""
        metrics = evaluate(policy, tokenizer) if accelerator.is_main_process else {}
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

    if cfg.eval_every and state["iteration"] == 0 and accelerator.is_main_process:
        # The SFT start: logged as the curves' reference, never a candidate for best/.
        state["start_eval"] = evaluate(policy, tokenizer)
        accelerator.log(state["start_eval"], step=0)
        with metrics_file.open("a") as handle:
            handle.write(json.dumps({"iteration": 0, **state["start_eval"]}) + "\n")
    total_time = Timings()
    for iteration in range(state["iteration"], iterations):
        timings = Timings()
        # Seeded per iteration and process, so a resumed run samples and shuffles exactly as an uninterrupted one.
        seed = cfg.seed * 100_003 + iteration * processes + rank
        sampling = torch.Generator(device=accelerator.device).manual_seed(seed)
        chosen = episode_indices(iteration, len(train_examples), cfg.batch_size, processes, rank, cfg.seed)
        rollout, stats = collect(accelerator.unwrap_model(agent), reference, mask_policy, tokenizer,
                                 [train_examples[i] for i in chosen], cfg, kl_ctl.beta, sampling, timings)
        with timings("update"):
            first_slot = iteration * cfg.ppo_epochs * cfg.minibatches
            shuffling = torch.Generator().manual_seed(seed)
            stats.update(ppo_update(agent, optimizer, rollout, cfg, accelerator, first_slot, shuffling, say))
        names = sorted(stats)
        reduced = accelerator.reduce(torch.tensor([stats[k] for k in names], device=accelerator.device), "mean")
        stats = dict(zip(names, reduced.tolist()))
        kl_ctl.update(stats["objective/kl"])
        if mask_policy is not None and (iteration + 1) % cfg.mask_sync_every == 0:
            mask_policy.sync()
        state["iteration"] = iteration + 1
        stats.update({f"time/{phase}": seconds for phase, seconds in timings.seconds.items()})
        total_time.add(timings)
        accelerator.log(stats, step=state["iteration"])
        progress.update(1)
        progress.set_postfix(reward=f"{stats['env/task_reward']:.3f}", kl=f"{stats['objective/kl']:.3f}",
                             beta=f"{kl_ctl.beta:.4f}")
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
               "held_weight_bytes": models.held_bytes, "held_weight_ratio": models.held_bytes / models.policy_bytes}
    if accelerator.is_main_process:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        best = "none" if state["best_eval"] is None else f"{state['best_eval']:.4f} at iteration {state['best_iteration']}"
        accelerator.print(f"best dev score {best}; checkpoints in {out}/best and {out}/last")
        accelerator.print(stopwatch.summary(accelerator.unwrap_model(agent)).line())
        accelerator.print(models.memory_line())
    accelerator.end_training()
    return summary
