"""Micro-batching: the requests queued while the model is busy go to it together in one call."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from components.serving.schema import RequestError
from components.serving.scorer import concat_packed

# a queued request: its packed rows, how many, and the future its answer goes to
Pending = tuple[dict[str, np.ndarray], int, asyncio.Future]


class MicroBatcher:
    """Joins the requests queued while the model is busy into one call, scored on a worker thread.

    Lives on the event loop (no locks): the first request starts a drain task; requests that
    arrive while a batch is scoring wait in ``_pending`` and go together in the next call.

    With ``max_wait_ms`` > 0, a batch smaller than the recent concurrency (the most requests any
    of the last few batches held) waits up to that long for the others, as TF Serving's batch
    timeout does. Closed-loop clients then fall into step and every call carries all of them,
    while a lone client (batches of one) never waits.

    When the score refuses a batch's rows (a RequestError: a model's transforms), each request of
    it is scored alone, so the error reaches only the request that sent them.
    """

    RECENT_BATCHES = 8

    def __init__(self, score: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
                 executor: Executor, max_batch_rows: int, observe_batch: Callable[[int], None] = lambda n: None,
                 max_wait_ms: float = 0.0) -> None:
        self._score = score
        self._executor = executor
        self._max_batch_rows = max_batch_rows
        self._observe_batch = observe_batch
        self._max_wait_s = max_wait_ms / 1000
        self._pending: list[Pending] = []
        self._draining = False
        self._recent: collections.deque[int] = collections.deque([1], maxlen=self.RECENT_BATCHES)
        self._arrival: asyncio.Future | None = None

    async def submit(self, packed: dict[str, np.ndarray], rows: int) -> dict[str, np.ndarray]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((packed, rows, future))
        if not self._draining:
            self._draining = True
            loop.create_task(self._drain())
        elif self._arrival is not None and not self._arrival.done():
            self._arrival.set_result(None)
        return await future

    def _take(self) -> list[Pending]:
        taken: list[Pending] = []
        total = 0
        while self._pending and (not taken or total + self._pending[0][1] <= self._max_batch_rows):
            item = self._pending.pop(0)
            taken.append(item)
            total += item[1]
        return taken

    async def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait (at most ``max_wait_ms``) until as many requests are queued as recently came together."""
        expected = max(self._recent)
        if self._max_wait_s <= 0 or len(self._pending) >= expected:
            return
        deadline = loop.time() + self._max_wait_s
        while len(self._pending) < expected and sum(rows for _, rows, _ in self._pending) < self._max_batch_rows:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._arrival = arrival = loop.create_future()
            timer = loop.call_later(remaining, _resolve, arrival)
            try:
                await arrival
            finally:
                timer.cancel()
                self._arrival = None

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                await self._gather(loop)
                batch = self._take()
                self._recent.append(len(batch))
                self._observe_batch(sum(rows for _, rows, _ in batch))
                packed = concat_packed([p for p, _, _ in batch])
                try:
                    outputs = await loop.run_in_executor(self._executor, self._score, packed)
                except RequestError as exc:
                    if len(batch) == 1:
                        _fail(batch, exc)
                    else:
                        await self._score_each(loop, batch)
                    continue
                except Exception as exc:  # noqa: BLE001 - handed to every waiting request
                    _fail(batch, exc)
                    continue
                start = 0
                for _, rows, future in batch:
                    if not future.done():
                        future.set_result({name: values[start : start + rows] for name, values in outputs.items()})
                    start += rows
        finally:
            self._draining = False

    async def _score_each(self, loop: asyncio.AbstractEventLoop, batch: list[Pending]) -> None:
        for packed, _, future in batch:
            try:
                outputs = await loop.run_in_executor(self._executor, self._score, packed)
            except Exception as exc:  # noqa: BLE001 - this request's own answer
                _fail([(packed, 0, future)], exc)
            else:
                if not future.done():
                    future.set_result(outputs)


def _fail(batch: list[Pending], exc: Exception) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(exc)


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)
