"""Micro-batching: concurrent requests share one `generate` call instead of queueing for the model one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence


class Batcher:
    """``await batcher.submit(source)`` -> (generation, size of the batch it ran in).

    One worker takes the oldest waiting source, gathers whatever else arrives
    within `max_wait_s` (up to `max_batch`), and runs them together in a worker
    thread, so the event loop keeps accepting requests while the model works;
    sources that arrive meanwhile form the next batch.
    """

    def __init__(self, run: Callable[[Sequence[str]], list[str]], max_batch: int = 16, max_wait_s: float = 0.005) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run = run
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[tuple[str, asyncio.Future[tuple[str, int]]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def submit(self, source: str) -> tuple[str, int]:
        if self._queue is None:
            raise RuntimeError("Batcher.start() was not awaited")
        future: asyncio.Future[tuple[str, int]] = asyncio.get_running_loop().create_future()
        await self._queue.put((source, future))
        return await future

    async def _work(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self._queue.get()]
            deadline = loop.time() + self.max_wait_s
            while len(batch) < self.max_batch:
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), max(0.0, deadline - loop.time())))
                except asyncio.TimeoutError:
                    break
            waiting = [(source, future) for source, future in batch if not future.done()]  # callers may have gone
            if not waiting:
                continue
            try:
                texts = await asyncio.to_thread(self.run, [source for source, _ in waiting])
            except Exception as error:  # the callers report it; the worker lives on for the next batch
                for _, future in waiting:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), text in zip(waiting, texts):
                if not future.done():
                    future.set_result((text, len(waiting)))
