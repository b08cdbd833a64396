"""A reward function in the form TRL's GRPOTrainer takes in ``reward_funcs``.

GRPOTrainer calls each reward function as ``f(prompts=..., completions=...,
completion_ids=..., **dataset_columns)`` and wants one float per completion.
Completions are strings, or message lists (``[{"role": "assistant",
"content": ...}]``) for conversational datasets. The gold state and requests
travel as dataset columns, as dicts or JSON strings. Nothing here imports TRL.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rewards.core import RewardConfig
from rewards.gold import Gold, offered_in
from rewards.score import sequence_rewards
from rewards.spans import Slots, Vocabulary


class TODRewardFunction:
    """``reward_funcs=[TODRewardFunction("tod")]``: Eq. 2, 3 or 4 on each completion.

    >>> reward = TODRewardFunction("understanding")
    >>> reward(prompts=["..."], completions=["<sos_b> [taxi] leave 17:15 <eos_b>"],
    ...        belief_state=['{"taxi": {"leave": "17:15"}}'], requested_slots=["{}"])
    [1.0]
    """

    def __init__(
        self,
        config: RewardConfig | str = "tod",
        *,
        vocabulary: Vocabulary | Slots | None = None,
        state_column: str = "belief_state",
        requests_column: str = "requested_slots",
        response_column: str | None = None,
    ) -> None:
        """`config` is a RewardConfig or just the reward's name; `vocabulary` is the corpus's span grammar
        (``todrl.data.span_vocabulary(dataset, data_dir)``; the default reads MultiWOZ and In-Car only)."""
        self.config = config if isinstance(config, RewardConfig) else RewardConfig(type=config)
        self.vocabulary = Vocabulary.of(vocabulary)
        self.state_column = state_column
        self.requests_column = requests_column
        self.response_column = response_column
        """Column of the gold responses (or whole targets): the `config.offer_slots` each gives join its Sgt."""
        if self.config.offer_slots and response_column is None:
            raise ValueError("config.offer_slots needs response_column: the gold responses tell which slots are offered")
        self.__name__ = f"{self.config.type}_reward"

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **columns: Any
    ) -> list[float]:
        states = self._column(columns, self.state_column, len(completions))
        requests = self._column(columns, self.requests_column, len(completions))
        responses = self._column(columns, self.response_column, len(completions)) if self.response_column else None
        offers = [offered_in(self.config.offer_slots, r) for r in responses] if responses else [()] * len(states)
        golds = [
            Gold.from_turn({"belief_state": state, "requested_slots": asked, "offered_slots": offered},
                           f"{self.__name__}: dataset row {index}")
            for index, (state, asked, offered) in enumerate(zip(states, requests, offers))
        ]
        texts = [completion_text(completion, index) for index, completion in enumerate(completions)]
        return sequence_rewards(texts, golds, self.config, self.vocabulary)

    def _column(self, columns: Mapping[str, Any], name: str, size: int) -> Sequence[Any]:
        if name not in columns:
            given = sorted(key for key in columns if key not in ("trainer_state", "log_extra", "log_metric"))
            raise ValueError(f"{self.__name__}: the dataset has no column {name!r} (columns passed: {given})")
        values = columns[name]
        if len(values) != size:
            raise ValueError(f"{self.__name__}: column {name!r} has {len(values)} rows for {size} completions")
        return values


def completion_text(completion: Any, index: int = 0) -> str:
    """The text of a plain or conversational completion (assistant messages joined)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and all(isinstance(message, Mapping) for message in completion):
        return "".join(_content(message.get("content"), index) for message in completion
                       if message.get("role", "assistant") == "assistant")
    raise TypeError(f"completion {index}: expected a string or a list of messages, got {type(completion).__name__}")


def _content(content: Any, index: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal form: [{"type": "text", "text": ...}, ...]
        return "".join(part.get("text", "") for part in content if isinstance(part, Mapping))
    raise TypeError(f"completion {index}: message content must be text, got {type(content).__name__}")

