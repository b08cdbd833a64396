"""Chat completions from any OpenAI-compatible endpoint: concurrent, retried, cached, and counted.

Only the standard library speaks HTTP here, so the command needs no client package. A request is retried with
exponential backoff (or the server's ``Retry-After``) when the connection fails, times out, or the server
answers 408, 409, 429 or 5xx; any other error status ends the run with the server's message. Every answer is
cached as it arrives (`ResponseCache`), so a run that stops resumes where it stopped.
"""

from __future__ import annotations

import http.client
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from threading import Lock
from typing import Any

from tqdm.auto import tqdm

from todrl.llm.cache import ResponseCache, request_key

RETRIED_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))


class EndpointError(RuntimeError):
    """The endpoint refused a request, or kept failing after every retry."""


@dataclass
class Usage:
    """What a run asked for: requests answered from the cache or sent, and the tokens the responses reported."""

    cached: int = 0
    sent: int = 0
    attempts: int = 0
    """HTTP requests made, retries included."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    cached_completion_tokens: int = 0
    without_usage: int = 0
    """Responses whose ``usage`` was missing (some local servers report none)."""

    def count(self, response: dict[str, Any], cached: bool) -> None:
        usage = response.get("usage")
        if not isinstance(usage, dict):
            self.without_usage += 1
            usage = {}
        prompt, completion = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if cached:
            self.cached += 1
            self.cached_prompt_tokens += prompt
            self.cached_completion_tokens += completion
        else:
            self.sent += 1
            self.prompt_tokens += prompt
            self.completion_tokens += completion

    def summary(self) -> str:
        line = (f"LLM: {self.cached + self.sent} requests, {self.sent} sent ({self.attempts} HTTP attempts), "
                f"{self.cached} from the cache; tokens used: {self.prompt_tokens} prompt + {self.completion_tokens} "
                f"completion (the cached answers cost {self.cached_prompt_tokens} + {self.cached_completion_tokens} "
                "when they were sent)")
        return line + (f"; {self.without_usage} responses reported no usage" if self.without_usage else "")


class ChatClient:
    """``POST {base_url}/chat/completions`` with a bearer key when there is one."""

    def __init__(self, base_url: str, api_key: str | None = None, cache: ResponseCache | None = None,
                 retries: int = 6, backoff_s: float = 1.0, timeout_s: float = 120.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key, self.retries, self.backoff_s, self.timeout_s = api_key, retries, backoff_s, timeout_s
        self.cache = cache or ResponseCache()
        self.usage = Usage()
        self._lock = Lock()

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
        """The response to one request body (which names its model), from the cache when it was asked before."""
        key = request_key(self.base_url, body["model"], body)
        response = self.cache.get(key)
        cached = response is not None
        if response is None:
            response = self._send(body)
            self.cache.put(key, {"base_url": self.base_url, "body": body}, response)
        with self._lock:
            self.usage.count(response, cached)
        return response

    def complete_all(self, bodies: Sequence[dict[str, Any]], concurrency: int = 8,
                     progress: bool = True) -> list[dict[str, Any]]:
        """Responses in the order of `bodies`; the first request that fails for good stops the others."""
        bar = tqdm(total=len(bodies), desc="LLM", disable=not progress)
        with ThreadPoolExecutor(max(1, concurrency)) as pool, bar:
            futures = [pool.submit(self.complete, body) for body in bodies]
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                for future in futures:
                    future.cancel()
                raise failed.exception()
            return [future.result() for future in futures]

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"content-type": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        data = json.dumps(body).encode()
        for attempt in range(self.retries + 1):
            with self._lock:
                self.usage.attempts += 1
            request = urllib.request.Request(f"{self.base_url}/chat/completions", data=data, headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                    response = json.loads(reply.read())
                if isinstance(response, dict):
                    return response
                raise ValueError(f"the answer is JSON but not an object: {str(response)[:200]}")
            except urllib.error.HTTPError as error:
                problem, wait_s = f"HTTP {error.code}: {_message(error)}", _retry_after(error)
                if error.code not in RETRIED_STATUS:
                    raise EndpointError(f"{self.base_url} refused a request: {problem}") from None
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
                problem, wait_s = f"{type(error).__name__}: {error}", None
            if attempt < self.retries:
                time.sleep(wait_s if wait_s is not None else self.backoff_s * 2**attempt * random.uniform(0.5, 1.5))
        raise EndpointError(f"{self.base_url}: no answer after {self.retries + 1} attempts; last: {problem}")


def _message(error: urllib.error.HTTPError) -> str:
    body = error.read().decode("utf-8", "replace")
    try:
        return str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return body[:500] or str(error.reason)


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    try:
        return max(0.0, float(error.headers.get("retry-after", "")))
    except ValueError:
        return None
