"""A reward function in the form TRL's GRPOTrainer takes in ``reward_funcs``.

GRPOTrainer calls each reward function as ``f(prompts=..., completions=...,
completion_ids=..., **dataset_columns)`` and wants one float per completion.
Completions are strings, or message lists (``[{"role": "assistant",
"content": ...}]``) for conversational datasets. The gold state and requests
travel as dataset columns, as dicts or JSON strings. Nothing here imports TRL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rewards.core import INFORMING_ACTS, RewardConfig
from rewards.gold import Gold
from rewards.score import sequence_rewards
from rewards.spans import SlotVocabulary, Slots


class TODRewardFunction:
    """``reward_funcs=[TODRewardFunction("tod")]``: Eq. 2, 3 or 4 on each completion.

    >>> reward = TODRewardFunction("understanding")
    >>> reward(prompts=["..."], completions=["<sos_b> [taxi] leave 17:15 <eos_b>"],
    ...        belief_state=['{"taxi": {"leave": "17:15"}}'], requested_slots=["{}"])
    [1.0]
    """

    def __init__(
        self,
        reward: str = "tod",
        *,
        alpha: float = 1.0,
        beta: float = 1.0,
        symmetric: bool = False,
        informing_acts: Iterable[str] = INFORMING_ACTS,
        request_spans: str = "either",
        request_weight: float = 1.0,
        slots: Slots | None = None,
        state_column: str = "belief_state",
        requests_column: str = "requested_slots",
        offers_column: str | None = None,
    ) -> None:
        self.config = RewardConfig(reward, alpha, beta, symmetric, frozenset(informing_acts), request_spans, request_weight)
        self.vocabulary = SlotVocabulary(slots)
        self.state_column = state_column
        self.requests_column = requests_column
        self.offers_column = offers_column
        """Optional column of the slots the gold system gives unasked (`Gold.offered`)."""
        self.__name__ = f"{reward}_reward"

    def __call__(
        self, prompts: Sequence[Any] | None = None, completions: Sequence[Any] = (), **columns: Any
    ) -> list[float]:
        states = self._column(columns, self.state_column, len(completions))
        requests = self._column(columns, self.requests_column, len(completions))
        offers = self._column(columns, self.offers_column, len(completions)) if self.offers_column else [()] * len(states)
        golds = [
            Gold.from_turn({"belief_state": state, "requested_slots": asked, "offered_slots": offered},
                           f"{self.__name__}: dataset row {index}")
            for index, (state, asked, offered) in enumerate(zip(states, requests, offers))
        ]
        texts = [completion_text(completion, index) for index, completion in enumerate(completions)]
        return sequence_rewards(texts, golds, slots=self.vocabulary, **vars(self.config))

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

