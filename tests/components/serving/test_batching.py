"""Serving's micro-batching: queued requests joined into one call, each given its rows."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from components.serving.batching import MicroBatcher


def test_micro_batcher_waits_for_the_recent_concurrency_but_never_for_a_lone_client():
    calls = []

    def score(packed):
        calls.append(len(packed["float32"]))
        return {"output": packed["float32"]}

    part = {"float32": np.zeros((1, 1), dtype="float32")}

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=64, max_wait_ms=200)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await batcher.submit(part, 1)  # a lone client: no batch of more than one seen yet
            lone = loop.time() - started
            await asyncio.gather(*(batcher.submit(part, 1) for _ in range(3)))  # three together
            calls.clear()

            async def late(delay: float):
                await asyncio.sleep(delay)
                return await batcher.submit(part, 1)

            started = loop.time()
            # three clients again, but one arrives 20 ms late: the batch waits for it
            await asyncio.gather(late(0), late(0), late(0.02))
            together = loop.time() - started
            return lone, together

    lone, together = asyncio.run(scenario())
    assert lone < 0.1
    assert calls == [3]
    assert together < 0.15  # woken by the third arrival, not by the 200 ms deadline


def test_micro_batcher_joins_queued_requests_and_gives_each_its_rows():
    calls = []

    def score(packed):
        calls.append(len(packed["float32"]))
        return {"output": packed["float32"] * 2}

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=5)
            parts = [{"float32": np.full((n, 1), float(n), dtype="float32")} for n in (1, 2, 3)]
            return await asyncio.gather(*(batcher.submit(p, len(p["float32"])) for p in parts))

    answers = asyncio.run(scenario())
    assert [a["output"][:, 0].tolist() for a in answers] == [[2.0], [4.0, 4.0], [6.0, 6.0, 6.0]]
    assert calls == [3, 3]  # 1 + 2 rows fit under max_batch_rows=5; the 3-row request goes next


def test_micro_batcher_hands_a_scoring_failure_to_every_request_of_the_batch():
    def score(packed):
        raise ValueError("broken model")

    async def scenario():
        with ThreadPoolExecutor(1) as executor:
            batcher = MicroBatcher(score, executor, max_batch_rows=5)
            part = {"float32": np.zeros((1, 1), dtype="float32")}
            return await asyncio.gather(batcher.submit(part, 1), batcher.submit(part, 1), return_exceptions=True)

    assert [str(a) for a in asyncio.run(scenario())] == ["broken model", "broken model"]
