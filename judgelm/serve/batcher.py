"""Dynamic micro-batching: many small requests, few large model calls.

Requests wait in a bounded queue (counted in items: samples to judge, prompts to continue). One
worker takes the oldest request, gathers every queued request with the same key (`JudgeOptions`
for ``submit``; the caller's key for ``submit_work``, e.g. the generation options of the OpenAI
routes) up to ``max_batch_size`` items, or until ``max_wait_s`` passes, runs the model once in a
thread (the model blocks; one thread, so calls never overlap), and hands each request its slice of
the results. A full queue refuses new work at once (`Overloaded`) instead of growing a backlog no
client will wait for.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from judgelm.options import JudgeOptions
from judgelm.serve.metrics import ServerMetrics
from judgelm.types import Sample, Verdict

__all__ = ["MicroBatcher", "Overloaded", "ShuttingDown"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class Overloaded(Exception):
    """The queue is full; ``retry_after`` is a hint in whole seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"judge queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


class ShuttingDown(Exception):
    """The server is draining for shutdown and takes no new work."""


@dataclass(eq=False)
class _Pending:
    samples: tuple[Any, ...]  # the items: samples for `submit`, anything for `submit_work`
    key: Hashable  # requests with equal keys share one model call
    run: Callable[[list[Any]], Sequence[Any]]  # items -> one result per item (on the model thread)
    future: asyncio.Future[list[Any]]
    enqueued: float = field(default_factory=time.monotonic)


class MicroBatcher:
    """Collects `submit` calls into batched `Judge.judge` calls (see the module doc).

    Use from one event loop: ``await start()``, ``await submit(...)`` from request handlers,
    ``await stop()`` on shutdown (it finishes everything already accepted).
    """

    def __init__(
        self,
        judge: Any,
        *,
        max_batch_size: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 1024,
        metrics: ServerMetrics | None = None,
    ):
        if max_batch_size < 1 or max_queue < 1:
            raise ValueError("max_batch_size and max_queue must be >= 1")
        self.judge = judge
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self.metrics = metrics or ServerMetrics()
        self._pending: deque[_Pending] = deque()
        self._queued_samples = 0
        self._exclusive = 0  # `call`s waiting or running
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: the model is one device; calls must not overlap.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="judgelm-model")
        self._batch_seconds = 0.0  # moving average, for Retry-After

    # ---- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        if self._worker is None:
            self._wake = asyncio.Event()
            self._worker = asyncio.create_task(self._run(), name="judgelm-batcher")

    async def stop(self) -> None:
        """Refuse new work, finish every accepted request, then stop the worker."""
        self._closing = True
        if self._wake is not None:
            self._wake.set()
        if self._worker is not None:
            await self._worker
            self._worker = None
        self._executor.shutdown(wait=True)

    @property
    def queued_samples(self) -> int:
        return self._queued_samples

    @property
    def queued_requests(self) -> int:
        return len(self._pending)

    # ---- the request side -------------------------------------------------------------------
    async def submit(self, samples: Sequence[Sample], options: JudgeOptions | None = None) -> list[Verdict]:
        """Judge ``samples`` in some upcoming batch; raises `Overloaded` / `ShuttingDown`."""
        options = options or JudgeOptions()
        kwargs = options.as_kwargs()
        return await self.submit_work(samples, ("judge", options), lambda items: self.judge.judge(items, **kwargs))

    async def submit_work(
        self, items: Sequence[Any], key: Hashable, run: Callable[[list[Any]], Sequence[Any]]
    ) -> list[Any]:
        """Run ``items`` in some upcoming model call: ``run(items of every queued request with this
        key)`` on the model thread, one result per item; raises `Overloaded` / `ShuttingDown`."""
        return await self.enqueue(items, key, run) if items else []

    def enqueue(
        self, items: Sequence[Any], key: Hashable, run: Callable[[list[Any]], Sequence[Any]]
    ) -> asyncio.Future[list[Any]]:
        """`submit_work` without waiting: queue now (or raise `Overloaded` / `ShuttingDown` now,
        before a streamed response starts) and return the future of the results. Cancelling the
        future drops the request if its model call has not started."""
        if self._closing or self._worker is None or self._wake is None:
            self.metrics.rejected.inc(reason="shutdown")
            raise ShuttingDown("the judge server is shutting down")
        n = len(items)
        if n == 0:
            raise ValueError("nothing to queue")
        if self._queued_samples + self._exclusive + n > self.max_queue:
            self.metrics.rejected.inc(reason="overload")
            raise Overloaded(self._retry_after())
        item = _Pending(tuple(items), key, run, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        self._queued_samples += n
        self._update_gauges()
        self._wake.set()
        return item.future

    async def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a model call that cannot share a batch: a streamed explanation, a follow-up
        chat) on the model thread, between batches, never overlapping another model call. It
        counts as one sample against ``max_queue`` while it waits and runs."""
        if self._closing or self._worker is None:
            self.metrics.rejected.inc(reason="shutdown")
            raise ShuttingDown("the judge server is shutting down")
        if self._queued_samples + self._exclusive + 1 > self.max_queue:
            self.metrics.rejected.inc(reason="overload")
            raise Overloaded(self._retry_after())
        self._exclusive += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)
        finally:
            self._exclusive -= 1

    def _retry_after(self) -> int:
        batches_ahead = math.ceil(self._queued_samples / self.max_batch_size)
        return max(1, math.ceil(batches_ahead * max(self._batch_seconds, 0.05)))

    def _update_gauges(self) -> None:
        self.metrics.queue_samples.set(self._queued_samples)
        self.metrics.queue_requests.set(len(self._pending))

    # ---- the worker side ---------------------------------------------------------------------
    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            if not self._pending:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            head = self._pending[0]
            if not self._closing:
                await self._fill(head.key)
            batch = self._take(head.key)
            if batch:
                await self._execute(batch)

    async def _fill(self, key: Hashable) -> None:
        """Wait up to ``max_wait_s`` for more same-key items while the batch is not full."""
        assert self._wake is not None
        deadline = time.monotonic() + self.max_wait_s
        while not self._closing and self._compatible_samples(key) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _compatible_samples(self, key: Hashable) -> int:
        return sum(len(p.samples) for p in self._pending if p.key == key and not p.future.done())

    def _take(self, key: Hashable) -> list[_Pending]:
        """Remove and return same-key requests in arrival order, up to the batch size (the
        first one always, even when it alone is larger). Requests whose client went away
        (cancelled future) are dropped here instead of costing model time."""
        batch: list[_Pending] = []
        size = 0
        keep: deque[_Pending] = deque()
        while self._pending:
            p = self._pending.popleft()
            if p.future.done():
                self._queued_samples -= len(p.samples)
                continue
            if p.key == key and (not batch or size + len(p.samples) <= self.max_batch_size):
                batch.append(p)
                size += len(p.samples)
                self._queued_samples -= len(p.samples)
            else:
                keep.append(p)
        self._pending = keep
        self._update_gauges()
        return batch

    async def _execute(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        samples = [s for p in batch for s in p.samples]
        run = batch[0].run
        start = time.monotonic()
        try:
            verdicts = await loop.run_in_executor(self._executor, lambda: list(run(samples)))
        except Exception as e:
            self.metrics.batch_errors.inc()
            if len(batch) > 1:
                # Isolate the request that broke the call: re-run each alone, so one bad request
                # cannot fail the others that happened to share its batch.
                for p in batch:
                    await self._execute([p])
                return
            log.exception("judge call failed")
            if not batch[0].future.done():
                batch[0].future.set_exception(e)
            return
        elapsed = time.monotonic() - start
        self._batch_seconds = elapsed if self._batch_seconds == 0 else 0.8 * self._batch_seconds + 0.2 * elapsed
        self.metrics.batch_size.observe(len(samples))
        self.metrics.batch_latency.observe(elapsed)
        offset = 0
        for p in batch:
            mine = verdicts[offset : offset + len(p.samples)]
            offset += len(p.samples)
            for v in mine:
                if not isinstance(v, Verdict):
                    continue
                self.metrics.verdicts.inc()
                if v.abstained:
                    self.metrics.abstains.inc(reason_code=str(v.reason_code or "unknown"))
            if not p.future.done():  # the client may have gone away meanwhile
                p.future.set_result(list(mine))
