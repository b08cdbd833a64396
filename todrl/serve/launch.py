"""Start a todrl server (`todrl.serve`, `todrl.demo`) as a child process and wait until it answers over HTTP.

The benchmark and the tests talk to real servers on 127.0.0.1, never to an
app object in the same process, so that they measure and check what a client sees.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def running(module: str, args: Sequence[str], ready_url: str, timeout_s: float = 180.0,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m module args`` until the block ends; ready once `ready_url` answers 200.

    If the process exits first, or does not answer within `timeout_s`, the
    error carries the end of its output.
    """
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
        try:
            _wait(process, ready_url, timeout_s, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait(process: subprocess.Popen[bytes], url: str, timeout_s: float, log) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{' '.join(map(str, process.args))} exited with {process.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s:\n{_tail(log)}")


def _tail(log, chars: int = 4000) -> str:
    log.flush()
    log.seek(0)
    return log.read().decode("utf-8", "replace")[-chars:]
