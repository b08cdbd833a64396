"""``python -m todrl.serve --checkpoint PATH``: an OpenAI-compatible chat server over any todrl checkpoint.

    python -m todrl.serve --checkpoint runs/sft/default/best --port 8000
    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")

``/v1/models`` lists the one model; ``/v1/chat/completions`` answers with the
lexicalized reply as the message content and the structured turn (belief
state, act, database result, delexicalized reply, unfilled placeholders) in
the message's ``todrl`` field. Send that field back on the assistant message
and the next turn costs one generation; drop it and the server re-derives it
(see `todrl.serve.chat`). Concurrent requests are batched. Every bad request
gets a 400 with an OpenAI-style JSON error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from todrl.data import SCORED_DATASETS
from todrl.models import ModelLoadError
from todrl.serve.batch import Batcher
from todrl.serve.chat import ChatRequest, RequestError, answer, read_conversation
from todrl.serve.policy import DialoguePolicy


def error_body(message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}


def create_app(policy: DialoguePolicy, model_id: str, max_turns: int = 40, max_batch: int = 16, max_wait_s: float = 0.005):
    """The FastAPI application serving `policy` under the name `model_id`."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse

    batcher = Batcher(policy.generate, max_batch, max_wait_s)
    created = int(time.time())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(title="todrl", lifespan=lifespan)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse(error_body(f"{where or 'body'}: {first.get('msg', 'invalid')}", where or None), status_code=400)

    @app.exception_handler(RequestError)
    async def refused(_: Request, error: RequestError) -> JSONResponse:
        return JSONResponse(error_body(str(error), error.param, error.code), status_code=400)

    @app.exception_handler(Exception)
    async def failed(_: Request, error: Exception) -> JSONResponse:
        body = {"error": {"message": f"{type(error).__name__}: {error}", "type": "server_error", "param": None, "code": None}}
        return JSONResponse(body, status_code=500)

    def model_entry() -> dict[str, Any]:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "todrl"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [model_entry()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str) -> Any:
        if name != model_id:
            return JSONResponse(error_body(f"unknown model {name!r}; this server has {model_id!r}", "model", "model_not_found"), 404)
        return model_entry()

    @app.post("/v1/chat/completions")
    async def chat(request: ChatRequest) -> Any:
        if request.model != model_id:
            raise RequestError(f"unknown model {request.model!r}; this server has {model_id!r}", "model", "model_not_found")
        if request.n != 1:
            raise RequestError(f"n={request.n}: one reply per request (decoding is greedy)", "n")
        if request.kb is not None and policy.dataset != "incar":
            raise RequestError(f"kb: only In-Car policies read a knowledge base; this one speaks {policy.dataset}", "kb")
        conversation = read_conversation(request.messages, max_turns)
        turn, info = await answer(policy, batcher, conversation, request.kb)
        completion_id = f"chatcmpl-{uuid.uuid4().hex}"
        message = {"role": "assistant", "content": turn.response, "todrl": turn.to_json()}
        head = {"id": completion_id, "created": int(time.time()), "model": model_id, "todrl": info}
        if request.stream:
            return StreamingResponse(_events(head, message), media_type="text/event-stream")
        choice = {"index": 0, "message": message, "finish_reason": "stop", "logprobs": None}
        return {**head, "object": "chat.completion", "choices": [choice]}

    return app


def _events(head: dict[str, Any], message: dict[str, Any]) -> Iterator[str]:
    """Server-sent events of a reply that is already complete: the role, the text, then the end with the turn."""
    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        body = {**head, "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return f"data: {json.dumps(body)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    yield chunk({"content": message["content"]}, None)
    yield chunk({"todrl": message["todrl"]}, "stop")
    yield "data: [DONE]\n\n"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m todrl.serve", description=__doc__.split("\n\n")[0].strip("`"))
    parser.add_argument("--checkpoint", type=Path, required=True, help="any todrl checkpoint: SFT, RL, adapter or merged")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--model-name", help="model id clients send (default: the checkpoint path as given)")
    parser.add_argument("--dataset", choices=SCORED_DATASETS, help="corpus the policy speaks (default: from the checkpoint)")
    parser.add_argument("--data-dir", type=Path,
                        help="corpus folder: MultiWOZ's db/ fills replies, SGD's schemas name slots (default: as trained, else $TODRL_DATA)")
    parser.add_argument("--max-source-length", type=int, help="default: from the checkpoint, else 256")
    parser.add_argument("--max-new-tokens", type=int, help="default: from the checkpoint, else 160")
    parser.add_argument("--max-turns", type=int, default=40, help="longest history accepted, in user turns")
    parser.add_argument("--max-batch", type=int, default=16, help="most requests generated together")
    parser.add_argument("--batch-wait-ms", type=float, default=5.0, help="how long a request waits for others to batch with")
    parser.add_argument("--device", help="default: cuda when available, else cpu")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        import uvicorn
    except ModuleNotFoundError as error:
        print(f"todrl.serve: {error.name} is not installed; pip install 'todrl[serve]'", file=sys.stderr)
        return 2
    try:
        policy = DialoguePolicy(args.checkpoint, args.dataset, args.data_dir, args.max_source_length,
                                args.max_new_tokens, args.device)
    except (OSError, ValueError, ModelLoadError) as error:
        print(f"todrl.serve: {error}", file=sys.stderr)
        return 2
    model_id = args.model_name or str(args.checkpoint)
    app = create_app(policy, model_id, args.max_turns, args.max_batch, args.batch_wait_ms / 1000)
    print(f"serving {model_id} ({policy.dataset}, {policy.device}) at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0

