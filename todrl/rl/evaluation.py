"""Periodic evaluation during RL: greedy generations on dev dialogues, scored by the corpus evaluator and the task reward.

Whole dialogues are generated (every turn conditioned on the gold previous
turn, as in training) because Inform and Success are dialogue-level.  The
checkpoint kept as best/ is the one with the highest Combined score where the
corpus has one (MultiWOZ, In-Car), else the highest dev task reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rewards import sequence_rewards

from todrl.data.db import MultiWozDB
from todrl.data.records import Dialogue
from todrl.evaluate import DstEvaluator, InCarEvaluator, Predictions, StandardEvaluator
from todrl.evaluate.dst import multiwoz_spelling, text_spelling
from todrl.evaluate.generate import predict_dialogues
from todrl.format import build_examples
from todrl.rl.task_reward import gold_of

if TYPE_CHECKING:
    from todrl.rl.trainer import RLConfig


class DevEvaluation:
    def __init__(self, dialogues: Sequence[Dialogue], dataset: str, data_dir: str | None, reward: str,
                 reward_options: dict, max_source_length: int, max_new_tokens: int, batch_size: int,
                 offer_slots: Sequence[str] = ()) -> None:
        self.dialogues = list(dialogues)
        self.examples = build_examples(self.dialogues)
        self.golds = [gold_of(e, offer_slots) for e in self.examples]
        self.reward = "tod" if reward == "none" else reward
        self.reward_options = reward_options
        self.generation = dict(max_source_length=max_source_length, max_new_tokens=max_new_tokens, batch_size=batch_size)
        self.dataset = dataset
        self.state_tracking = DstEvaluator(self.dialogues, multiwoz_spelling if dataset == "multiwoz21" else text_spelling)
        self.corpus = None
        if dataset == "multiwoz21":
            from todrl.data.multiwoz import SAMPLE_PATH

            self.corpus = StandardEvaluator(self.dialogues, MultiWozDB(Path(data_dir or SAMPLE_PATH) / "db"))
        elif dataset == "incar":
            self.corpus = InCarEvaluator(self.dialogues)

    @classmethod
    def of_run(cls, cfg: RLConfig, dialogues: Sequence[Dialogue], batch_size: int) -> DevEvaluation:
        """The evaluation an RL run with `cfg` makes: its reward, generation lengths and offered slots."""
        return cls(dialogues, cfg.dataset, cfg.data_dir, cfg.reward, cfg.reward_options, cfg.max_source_length,
                   cfg.max_new_tokens, batch_size, cfg.offer_slots)

    def __call__(self, policy, tokenizer) -> dict[str, float]:
        if not self.examples:
            return {}
        return self.score(*self.generate(policy, tokenizer))

    def generate(self, policy, tokenizer) -> tuple[Predictions, list[str]]:
        """Greedy generations of every dev turn, as predictions and as raw text (in `self.examples` order)."""
        return predict_dialogues(policy, tokenizer, self.dialogues, self.dataset, **self.generation)

    def score(self, predictions: Predictions, texts: list[str]) -> dict[str, float]:
        """Task reward, JGA and the corpus metrics of one set of dev generations."""
        rewards = sequence_rewards(texts, self.golds, reward=self.reward, **self.reward_options)
        metrics = {"eval/task_reward": sum(rewards) / len(rewards)}
        metrics["eval/jga"] = self.state_tracking.evaluate(predictions, "<rl dev>").joint_goal_accuracy
        if isinstance(self.corpus, StandardEvaluator):
            result = self.corpus.evaluate(predictions, "<rl dev>", lexical=False)
            metrics.update({"eval/inform": result.inform.get("total"), "eval/success": result.success.get("total"),
                            "eval/bleu": result.bleu, "eval/combined": result.combined})
        elif self.corpus is not None:
            result = self.corpus.evaluate(predictions, "<rl dev>").as_dict()
            metrics.update({f"eval/{k}": result[k] for k in ("match", "success_f1", "bleu", "combined")})
        return {name: value for name, value in metrics.items() if value is not None}

    @staticmethod
    def selection_score(metrics: dict[str, float]) -> float:
        return metrics.get("eval/combined", metrics["eval/task_reward"])
