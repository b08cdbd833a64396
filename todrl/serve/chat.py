"""The chat protocol: an OpenAI chat request -> the dialogue so far -> the next system turn.

The server keeps no session. Each assistant message may carry back, in its
``todrl`` field, the structured turn the server returned with it; the next
source needs only the last one. A client that drops the field (a plain chat
UI) still gets an answer: the missing turns are re-derived by running the
policy over the user messages since the last carried turn, and the response
says how many were.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from todrl.data.normalize import normalize_text
from todrl.data.records import Turn
from todrl.serve.batch import Batcher
from todrl.serve.policy import KB, DialoguePolicy, SystemTurn


class RequestError(ValueError):
    """A request the server understands but cannot answer; becomes a 400 with an OpenAI-style error body."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.code = code


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None
    todrl: dict[str, Any] | None = None
    """The structured turn returned with this assistant message, sent back as it came."""

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text for part in self.content)
        return self.content or ""


class ChatRequest(_Strict):
    """The fields of OpenAI's chat request that mean something here; sampling settings are accepted and unused
    (decoding is greedy, as in evaluation)."""

    model: str
    messages: list[ChatMessage]
    stream: bool = False
    n: int = 1
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    kb: list[dict[str, str]] | None = None
    """In-Car: the dialogue's knowledge-base rows, to fill the reply from."""


@dataclass
class Exchange:
    """A past user turn and, when the client sent it back, the structured system turn that answered it."""

    user: str
    answer: SystemTurn | None = None


@dataclass
class Conversation:
    past: list[Exchange] = field(default_factory=list)
    user: str = ""


def read_conversation(messages: list[ChatMessage], max_turns: int) -> Conversation:
    """User and assistant messages as turns. System messages are skipped (the policy has its own prompt),
    assistant messages before the first user message too; consecutive messages of one role are one turn."""
    past: list[Exchange] = []
    pending: list[str] = []
    for index, message in enumerate(messages):
        if message.role in ("system", "developer"):
            continue
        if message.role == "user":
            words = normalize_text(message.text())
            if not words:
                raise RequestError(f"messages[{index}]: the user message is empty", f"messages[{index}].content")
            pending.append(words)
            continue
        answer = _carried(message, index)
        if pending:
            past.append(Exchange(" ".join(pending), answer))
            pending = []
        elif past and answer is not None:
            past[-1].answer = answer
    if not pending:
        where = "no user message" if not past else "the last message is the assistant's; the user speaks next"
        raise RequestError(f"messages: {where}", "messages")
    if len(past) + 1 > max_turns:
        raise RequestError(f"messages: history too long: {len(past) + 1} user turns, at most {max_turns}",
                           "messages", "context_length_exceeded")
    return Conversation(past, " ".join(pending))


def _carried(message: ChatMessage, index: int) -> SystemTurn | None:
    if message.todrl is None:
        return None
    try:
        return SystemTurn.from_json(message.todrl)
    except ValueError as error:
        raise RequestError(f"messages[{index}].todrl: {error}", f"messages[{index}].todrl") from error


async def answer(policy: DialoguePolicy, batcher: Batcher, conversation: Conversation, kb: KB | None) -> tuple[SystemTurn, dict[str, Any]]:
    """The next system turn, and how it was reached: the history carried back or re-derived, and batch sizes."""
    start = max((i for i, exchange in enumerate(conversation.past) if exchange.answer is not None), default=-1)
    previous: Turn | None = None
    if start >= 0:
        carried = conversation.past[start]
        previous = carried.answer.as_turn(carried.user)
    batch_sizes = []
    for exchange in conversation.past[start + 1:]:
        text, size = await batcher.submit(policy.source(exchange.user, previous))
        previous = policy.read(text, kb).as_turn(exchange.user)
        batch_sizes.append(size)
    text, size = await batcher.submit(policy.source(conversation.user, previous))
    rederived = len(conversation.past) - start - 1
    info: dict[str, Any] = {"history": "rederived" if rederived else "carried", "rederived_turns": rederived,
                            "batch_sizes": [*batch_sizes, size]}
    if rederived:
        info["note"] = (f"{rederived} earlier turn(s) came without their 'todrl' field; their state, act and "
                        "delexicalized reply were re-derived by running the policy over the history")
    return policy.read(text, kb), info
