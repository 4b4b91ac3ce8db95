"""Entity flushes, written one at a time and in order, in the background by default.

While a flush writes users, items and item x minute documents, the consumer goes on reading,
validating and counting the next micro-batches: the database and the consumer's CPU work at
the same time, and a flush never holds back the per-batch counts (freshness). Flushes of one
consumer never overlap, and each covers the offsets right after the previous one, which is
what their watermarks need (docs/consumer.md).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from pulse.pipeline.apply import BatchReport
from pulse.pipeline.entities import EntityBuffer, Flush

log = logging.getLogger(__name__)


class FlushWriter(Protocol):
    """Writes one entity flush (pulse/pipeline/apply.py:BatchWriter)."""

    def flush(self, pending: Flush) -> BatchReport: ...


class EntityFlusher:
    """Gathers applied batches and writes their entity flushes.

    A failed flush is kept and written again, before any later one, at the next chance
    (`flush_due`, `flush_all`); its error is raised once, to the caller that sees it first.
    """

    def __init__(self, writer: FlushWriter, buffer: EntityBuffer, *, background: bool) -> None:
        self.writer = writer
        self.buffer = buffer
        self.done: list[BatchReport] = []
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="entity-flush")
            if background
            else None
        )
        self._running: tuple[Flush, Future[BatchReport]] | None = None
        self._failed: Flush | None = None

    def add(self, report: BatchReport) -> None:
        """An applied batch's valid events now wait for a flush."""
        if report.verdict is not None:
            self.buffer.add(report.batch_id, report.ranges, report.verdict.events)

    def flush_due(self) -> None:
        """Start a flush if its time or size has come and none is being written. While the
        buffer is full, wait for the flush being written first: the consumer stops reading
        rather than holding more events the slower the database gets."""
        self._collect(wait=self.buffer.full)
        if self._running is None and (self._failed is not None or self.buffer.due()):
            self._start()

    def flush_all(self) -> None:
        """Write everything waiting, and wait until it is written."""
        self._collect(wait=True)
        self._start()
        self._collect(wait=True)

    def discard(self) -> None:
        """Forget what waits (after a failure; the next owner re-reads it from Kafka). A flush
        being written is waited for first: no write of ours outlives our partitions."""
        if self._running is not None:
            _, future = self._running
            self._running = None
            if future.exception() is not None:
                log.warning("entity flush failed while stopping: %s", future.exception())
        self.buffer.clear()
        self._failed = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _start(self) -> None:
        if self._failed is not None:  # first, in order: flushes of a partition never overtake
            self.done.append(self.writer.flush(self._failed))
            self._failed = None
        pending = self.buffer.take()
        if pending is None:
            return
        self.buffer.clear()
        if self._pool is not None:
            self._running = (pending, self._pool.submit(self.writer.flush, pending))
            return
        try:
            self.done.append(self.writer.flush(pending))
        except Exception:
            self._failed = pending
            raise

    def _collect(self, *, wait: bool) -> None:
        if self._running is None:
            return
        pending, future = self._running
        if not wait and not future.done():
            return
        self._running = None
        try:
            self.done.append(future.result())
        except Exception:
            self._failed = pending
            raise
