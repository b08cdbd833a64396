"""Answers of a chat endpoint kept on disk, so that a rerun never sends the same request twice.

An entry is keyed by a digest of the endpoint's base URL, the model and the whole request body (messages and
sampling settings), never the API key; it holds the request beside the response for inspection. Entries are
written atomically (a scratch file renamed into place), so concurrent writers and a killed run leave either a
whole entry or none. They live under ``$TODRL_CACHE/llm`` (default ``~/.cache/todrl/llm``); deleting the
folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from todrl.evaluate.cache import cache_dir


def request_key(base_url: str, model: str, body: dict[str, Any]) -> str:
    text = json.dumps({"base_url": base_url.rstrip("/"), "model": model, "body": body}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ResponseCache:
    """Responses by request key, in ``folder/<first two hex digits>/<key>.json``."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or cache_dir() / "llm"

    def _path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            return json.loads(path.read_text(encoding="utf-8"))["response"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:  # torn or foreign: asked again, never trusted
            print(f"warning: unreadable cache entry {path} ({error}); asking again", file=sys.stderr)
            return None

    def put(self, key: str, request: dict[str, Any], response: dict[str, Any]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, suffix=".tmp", delete=False) as handle:
            json.dump({"request": request, "response": response}, handle, ensure_ascii=False)
        os.replace(handle.name, path)
