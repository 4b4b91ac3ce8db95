"""Entity flushes, written one at a time and in order, in the background by default.

While a flush writes users, items and item x minute documents, the consumer goes on reading,
validating and counting the next micro-batches: the database and the consumer's CPU work at
the same time, and a flush never holds back the per-batch counts (freshness). Flushes of one
consumer never overlap, and each covers the offsets right after the previous one, which is
what their watermarks need (docs/consumer.md).

At a handover neither side writes while the other waits: the member giving partitions up
waits only for the flush being written and forgets what of them waits in memory; the member
taking them queues that here as a Reread, read back from Kafka and written in this thread
before its own flushes, while it reads on (pulse/pipeline/consumer.py).
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

from pulse.ingest.batch import OffsetRange
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.entities import EntityBuffer, Flush, Pending, Reread

log = logging.getLogger(__name__)


class FlushWriter(Protocol):
    """Writes one entity flush (pulse/pipeline/apply.py:BatchWriter)."""

    def flush(self, pending: Flush) -> BatchReport:
        """Write `pending`; a re-read one (`pending.replay`) is reported as a replay."""
        ...

    def begun(self, ranges: list[OffsetRange]) -> bool:
        """Whether the flush of `ranges` has a ledger entry (its writing began)."""
        ...


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
        self._running: tuple[Pending, Future[BatchReport]] | None = None
        self._failed: Pending | None = None
        self._queued: list[Pending] = []
        """Owed for partitions just given to us: written before anything buffered."""
        self._holding = False

    def add(self, report: BatchReport) -> None:
        """An applied batch's valid events now wait for a flush."""
        if report.verdict is not None:
            self.buffer.add(report.batch_id, report.ranges, report.verdict.events)

    def flush_due(self) -> None:
        """Start a flush if its time or size has come and none is being written. While the
        buffer is full, wait for the flush being written first: the consumer stops reading
        rather than holding more events the slower the database gets."""
        self._collect(wait=self.buffer.full)
        if self._holding:
            due = self.buffer.full  # the bound on memory outranks a quick handover
        else:
            due = bool(self._failed or self._queued or self.buffer.due())
        if self._running is None and due:
            self._start()

    def hold(self) -> None:
        """Start no flush from now on unless the buffer is full: the partitions are about to be
        handed over, and a flush being written then would hold the handover up (`release`
        waits for it)."""
        self._holding = True

    def queue(self, pending: Pending) -> None:
        """Write `pending` (a backlog owed for partitions just given to us) before anything
        buffered, at the next chance."""
        self._queued.append(pending)

    def flush_all(self) -> None:
        """Write everything waiting, and wait until it is written."""
        self._collect(wait=True)
        while self._failed or self._queued or not self.buffer.empty:
            self._start()
            self._collect(wait=True)

    def release(self, partitions: set[int]) -> None:
        """Give `partitions` up: wait for the flush being written (no write of ours outlives
        our partitions), then forget what waits of them; their next owner re-reads it.

        A failed flush whose writing began is kept whole, to be written again as it began: its
        ledger entry is unfinished, so the next owner replays it whole too. Cut to the
        partitions kept, it could reach a document first, and its watermarks would refuse the
        whole one there: that document would miss the given-up partitions' part. (Two writers
        of one same flush are safe: each document takes it once.) A failed flush that never
        began is cut: the next owner re-reads its part with what else waits of it.
        """
        try:
            self._collect(wait=True)
        finally:
            queued = (pending.without(partitions) for pending in self._queued)
            self._queued = [pending for pending in queued if pending is not None]
            self.buffer.release(partitions)
            if self._failed is not None and not self.writer.begun(self._failed.ranges):
                self._failed = self._failed.without(partitions)

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
        self._queued = []

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def _start(self) -> None:
        if self._failed is not None:  # first, in order: flushes of a partition never overtake
            self.done.append(self._write(self._failed))
            self._failed = None
        if self._queued:
            pending: Pending | None = self._queued.pop(0)
        else:
            pending = self.buffer.take()
            self.buffer.clear()
        if pending is None:
            return
        if self._pool is not None:
            self._running = (pending, self._pool.submit(self._write, pending))
            return
        try:
            self.done.append(self._write(pending))
        except Exception:
            self._failed = pending
            raise

    def _write(self, pending: Pending) -> BatchReport:
        # A Reread is read here, in the flush's thread: no partition waits for Kafka's answer.
        return self.writer.flush(pending.load() if isinstance(pending, Reread) else pending)

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
