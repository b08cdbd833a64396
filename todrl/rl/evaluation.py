"""Periodic evaluation during RL: greedy generations on dev dialogues, scored by the corpus evaluator and the task reward.

Whole dialogues are generated (every turn conditioned on the gold previous
turn, as in training) because Inform and Success are dialogue-level.  The
checkpoint kept as best/ is the one with the highest Combined score where the
corpus has one (MultiWOZ, In-Car), else the highest dev task reward.
"""

from __future__ import annotations

from collections.abc import Sequence

from rewards import RewardConfig, Vocabulary, sequence_rewards

from todrl.data import span_vocabulary
from todrl.data.records import Dialogue
from todrl.evaluate import Predictions
from todrl.evaluate.corpus import DEV_SELECTION, CorpusScorer, figures
from todrl.evaluate.generate import predict_dialogues
from todrl.format import build_examples
from todrl.instruct import InstructFormat, inference_format
from todrl.rl.config import RLConfig
from todrl.rl.task_reward import gold_of, judged_by


class DevEvaluation:
    def __init__(self, dialogues: Sequence[Dialogue], dataset: str, data_dir: str | None, split: str,
                 reward: RewardConfig, vocabulary: Vocabulary, max_source_length: int, max_new_tokens: int,
                 batch_size: int, form: InstructFormat | None = None, synced: bool = False) -> None:
        self.dialogues = list(dialogues)
        self.form = form
        self.examples = build_examples(self.dialogues)
        self.golds = [gold_of(e, reward) for e in self.examples]
        self.reward = judged_by(reward)
        self.vocabulary = vocabulary
        self.generation = dict(max_source_length=max_source_length, max_new_tokens=max_new_tokens, batch_size=batch_size)
        if synced:  # sharded weights: every process generates, each decoding step a collective they all make
            self.generation["synced_gpus"] = True
        names, options = DEV_SELECTION[dataset]
        self.corpus = CorpusScorer(dataset, self.dialogues, data_dir, split, names, options)

    @classmethod
    def of_run(cls, cfg: RLConfig, dialogues: Sequence[Dialogue], batch_size: int,
               vocabulary: Vocabulary | None = None, synced: bool = False) -> DevEvaluation:
        """The evaluation an RL run with `cfg` makes: its reward (offered slots included) and generation lengths."""
        vocabulary = vocabulary or span_vocabulary(cfg.dataset, cfg.data_dir)
        form = inference_format(cfg.format, cfg.dataset, cfg.data_dir, vocabulary, dialogues)
        return cls(dialogues, cfg.dataset, cfg.data_dir, cfg.dev_split, cfg.reward, vocabulary, cfg.max_source_length,
                   cfg.max_new_tokens, batch_size, form, synced)

    def __call__(self, policy, tokenizer) -> dict[str, float]:
        if not self.examples:
            return {}
        return self.score(*self.generate(policy, tokenizer))

    def generate(self, policy, tokenizer) -> tuple[Predictions, list[str]]:
        """Greedy generations of every dev turn, as predictions and as raw text (in `self.examples` order)."""
        return predict_dialogues(policy, tokenizer, self.dialogues, self.vocabulary, form=self.form, **self.generation)

    def score(self, predictions: Predictions, texts: list[str]) -> dict[str, float]:
        """Task reward, JGA and the corpus metrics of one set of dev generations."""
        rewards = sequence_rewards(texts, self.golds, self.reward, self.vocabulary)
        metrics = {"eval/task_reward": sum(rewards) / len(rewards)}
        metrics |= {f"eval/{name}": value for name, value in figures(self.corpus.score(predictions, "<rl dev>")).items()}
        return {name: value for name, value in metrics.items() if value is not None}

    @staticmethod
    def selection_score(metrics: dict[str, float]) -> float:
        return metrics.get("eval/combined", metrics["eval/task_reward"])
