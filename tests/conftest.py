"""Shared fixtures: where the real datasets are, and how to react when they are not."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# One intra-op thread per process: the tiny models gain nothing from more, and on a shared 2-core machine
# oversubscribed threads made single steps ~10x slower. Set before torch is imported; child processes inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

settings.register_profile("full", max_examples=250)
settings.register_profile("fast", max_examples=25)


def pytest_configure(config: pytest.Config) -> None:
    """The fast lane (`-m "not slow"`) also draws fewer random examples per property; every other run draws 250."""
    settings.load_profile("fast" if "not slow" in (config.option.markexpr or "") else "full")


DATA_DIR = Path(os.environ.get("TODRL_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data")).resolve()


def require_data(*relative: str) -> Path:
    """Path to a dataset under TODRL_DATA; skip when absent, fail under CI (which always has it)."""
    path = DATA_DIR.joinpath(*relative)
    if not path.exists():
        message = f"dataset not found: {path} (set TODRL_DATA to the folder holding multiwoz21/, kvret/, sgd/)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return require_data()


@pytest.fixture(scope="session")
def tiny_policy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A four-step SFT checkpoint of the tiny preset on the embedded sample: it talks nonsense, but loads, serves
    and carries its run config like any trained policy."""
    from accelerate.state import AcceleratorState

    from todrl.sft import SFTConfig, train

    out = tmp_path_factory.mktemp("tiny_policy")
    AcceleratorState._reset_state(reset_partial_state=True)
    train(SFTConfig(output_dir=str(out), max_steps=4, batch_size=8, vocab_size=400, max_target_length=48))
    AcceleratorState._reset_state(reset_partial_state=True)
    return out / "best"


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one process-wide state: a test that runs a training loop starts from none, whatever ran before."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory: pytest.TempPathFactory):
    """The evaluate command's cache of prepared references goes to a folder of the test session's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TODRL_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def served(tiny_policy: Path):
    """todrl's own OpenAI-compatible server over the tiny policy on 127.0.0.1, for the features that talk to an LLM:
    (its /v1 base URL, the checkpoint it serves)."""
    from todrl.serve.launch import free_port, running

    port = free_port()
    base = f"http://127.0.0.1:{port}/v1"
    with running("todrl.serve", ["--checkpoint", str(tiny_policy), "--port", str(port)], f"{base}/models"):
        yield base, str(tiny_policy)
