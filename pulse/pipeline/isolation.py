"""A batch whose writing fails for what its records hold cannot block its partitions.

Transient failures (the database or broker down) are raised: the caller retries the same
batch later. A *record-caused* failure (pulse/pipeline/failures.py) splits the batch in two
halves with ledger entries of their own, written one after the other; a half that fails too
is split again, down to one record, which is then written as a dead letter with the error as
its reason (a *refused* record). The batch's own entry becomes `split` once its parts are
recorded, so a crash at any point replays either the batch (which splits the same way
again) or its parts.

Documents the failed batch wrote before it failed hold its watermarks, so both halves leave
them alone: they already count every record of the batch. A refused record may therefore
stay counted in such documents (the minutes, say) while the global totals count it as a
dead letter; docs/reliability.md says so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from pulse.ingest.batch import MicroBatch, OffsetRange, entity_flush_id, ranges_of
from pulse.pipeline.apply import BatchReport, BatchWriter
from pulse.pipeline.entities import Flush, covering, within
from pulse.pipeline.failures import is_record_caused
from pulse.pipeline.opening import Pipeline
from pulse.pipeline.target import Target, flush_fields
from pulse.store import writes
from pulse.store.reads import in_ledger

log = logging.getLogger(__name__)

MAX_REFUSED = 8
"""More records of one batch failing to write on their own is not a few bad records but a
fault of the database or of Pulse: the error is raised and the batch retried."""
REFUSED = "could not be written"
"""The start of a refused record's reason."""


class IsolationError(RuntimeError):
    """Too many records of one batch fail to write: the cause is not in the records."""


def apply_isolating(
    pipeline: Pipeline, batch: MicroBatch, target: Target, *, consume_seconds: float = 0.0
) -> list[BatchReport]:
    """Write the batch, or its parts if record-caused failures split it; one report each."""
    return _Isolation(pipeline).write(batch, target, consume_seconds)


@dataclass
class _Isolation:
    """One batch's writing, with what its isolation has refused so far."""

    pipeline: Pipeline
    refusals_left: int = MAX_REFUSED

    def write(
        self, batch: MicroBatch, target: Target, consume_seconds: float = 0.0
    ) -> list[BatchReport]:
        try:
            report = self.pipeline.writer.apply(batch, target, consume_seconds=consume_seconds)
        except Exception as exc:
            if not is_record_caused(exc):
                raise
            error = _error(exc)
            if batch.size == 1:
                return [self._refuse(batch, target, error)]
            return self._split(batch, target, error)
        return [report]

    def _refuse(self, batch: MicroBatch, target: Target, error: str) -> BatchReport:
        self.refusals_left -= 1
        if self.refusals_left < 0:
            raise IsolationError(
                f"more than {MAX_REFUSED} records of one batch fail to write, the last "
                f"{target.batch_id}: the cause is not in the records ({error})"
            )
        log.error("record %s is refused and dead-lettered: %s", target.batch_id, error)
        return self.pipeline.writer.apply(batch, target.refusing(f"{REFUSED} ({error})"))

    def _split(self, batch: MicroBatch, target: Target, error: str) -> list[BatchReport]:
        middle = batch.size // 2
        halves = [
            MicroBatch(batch.topic, batch.records[:middle]),
            MicroBatch(batch.topic, batch.records[middle:]),
        ]
        parts = [Target.again(half, marks_by_topic=target.marks_by_topic) for half in halves]
        db, topic = self.pipeline.db, self.pipeline.topic
        # The parts are recorded before the batch is marked split: a crash loses neither.
        for half, part in zip(halves, parts, strict=True):
            extra = {"part_of": target.batch_id} | part.ledger_fields()
            writes.ledger_begin(db, part.batch_id, topic, list(part.ranges), half.size, extra)
        part_ids = [part.batch_id for part in parts]
        writes.ledger_split(db, topic, target.batch_id, list(target.ranges), part_ids, error)
        log.warning("batch %s failed (%s); writing it in two parts", target.batch_id, error)
        reports = []
        for half, part in zip(halves, parts, strict=True):
            reports += self.write(half, part)
        return reports


def _error(exc: Exception) -> str:
    """An error in one line of at most 300 characters after its type."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"


def flush_isolating(writer: BatchWriter, pending: Flush) -> list[BatchReport]:
    """Write an entity flush, or its parts if a record-caused failure splits it by batches.
    A flush of one batch that still fails is refused: its users' and items' figures are left
    out (its counts are written already), recorded in the ledger and counted, and the flushes
    after it go on."""
    try:
        return [writer.flush(pending)]
    except Exception as exc:
        if not is_record_caused(exc):
            raise
        error = _error(exc)
    flush_id = entity_flush_id(writer.topic, pending.ranges)
    if len(pending.batches) == 1:
        log.error("entity flush %s is refused: %s", flush_id, error)
        writes.ledger_refuse_flush(writer.db, writer.topic, flush_id, pending.ranges, error)
        return [BatchReport.nothing(flush_id)]
    middle = len(pending.batches) // 2
    parts = [_part(pending, pending.batches[:middle]), _part(pending, pending.batches[middle:])]
    for part in parts:  # recorded before the flush is marked split: a crash loses neither
        part_id = entity_flush_id(writer.topic, part.ranges)
        records = part.events.height
        writes.ledger_begin(
            writer.db, part_id, writer.topic, part.ranges, records, flush_fields(part)
        )
    part_ids = [entity_flush_id(writer.topic, part.ranges) for part in parts]
    writes.ledger_split(writer.db, writer.topic, flush_id, pending.ranges, part_ids, error)
    log.warning("entity flush %s failed (%s); writing it in two parts", flush_id, error)
    reports = []
    for part in parts:
        reports += flush_isolating(writer, part)
    return reports


class IsolatingFlushes:
    """What the entity flusher writes with: `flush_isolating`, one report per flush."""

    def __init__(self, writer: BatchWriter) -> None:
        self.writer = writer

    def flush(self, pending: Flush) -> BatchReport:
        reports = flush_isolating(self.writer, pending)
        if len(reports) == 1:
            return reports[0]
        return BatchReport.merged(entity_flush_id(self.writer.topic, pending.ranges), reports)

    def begun(self, ranges: list[OffsetRange]) -> bool:
        return in_ledger(self.writer.db, entity_flush_id(self.writer.topic, ranges))


def _part(pending: Flush, batches: list[str]) -> Flush:
    ranges = covering(r for listed in batches for r in ranges_of(listed))
    events = within(pending.events, ranges)
    return replace(pending, ranges=ranges, batches=batches, events=events, replay=True)
