"""The aggregating consumer: one member of the consumer group, applying batch after batch.

Order of one batch (pulse/pipeline/apply.py names the steps; docs/consumer.md explains them):
ledger entry 'writing', dead letters, guarded upserts of the counts, offsets recorded in
MongoDB (the source of truth for where to resume), ledger entry 'applied', then the offsets
committed to Kafka. The batch's valid events then wait for the next entity flush (users,
items, item x minute), which runs every PULSE_CONSUMER_ENTITY_FLUSH_SECONDS, before partitions
are given up, and when the consumer leaves.

On (re)assignment, before anything new is read: unfinished batches touching the new
partitions are replayed over exactly their recorded ranges, then unfinished entity flushes.
The batches still waiting for an entity flush are queued to be re-read and flushed before
anything new, in the flush's thread as reading resumes (here Kafka is only asked whether it
still holds them). Reading resumes from the offsets stored in MongoDB. Partitions given up
wait only for the entity flush being written: what else waits of them is forgotten here and
re-read by their next owner, so a handover stalls them for part of one flush, not two.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from types import TracebackType
from typing import Any, Self

import polars as pl
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from pulse.config import Settings
from pulse.ingest.batch import MicroBatch, OffsetRange, ranges_of
from pulse.ingest.validate import validate
from pulse.kafka.clients import admin_client, ensure_topic, offset_bounds
from pulse.kafka.clients import consumer as make_consumer
from pulse.kafka.lag import records_behind
from pulse.kafka.source import (
    Closing,
    RecordsGoneError,
    Revocations,
    fetched_behind,
    poll_batch,
    read_ranges,
    unreadable,
)
from pulse.pipeline.apply import BatchReport, StaleBatchError, StepHook
from pulse.pipeline.entities import EntityBuffer, Flush, Reread, backlog, covering, within
from pulse.pipeline.flusher import EntityFlusher
from pulse.pipeline.isolation import IsolatingFlushes, apply_isolating, flush_isolating
from pulse.pipeline.laps import Laps
from pulse.pipeline.opening import Pipeline, open_pipeline
from pulse.pipeline.target import Target, marks_by_topic
from pulse.preflight import check_kafka
from pulse.store import writes
from pulse.store.reads import entity_progress, stored_offsets

log = logging.getLogger(__name__)

FRESH_SECONDS = 5.0
"""A batch written this soon after its poll returned is not checked for staleness (a read of
MongoDB's offsets per batch, which costs freshness under load). A member only writes a stale
batch after losing its partitions without noticing: frozen or cut off for longer than the
group's session timeout (PULSE_KAFKA_SESSION_TIMEOUT_MS) or max.poll.interval.ms, and a poll
serves the revocation it would notice. So an old batch (a retried task, a resumed process) is
checked, a fresh one is not."""


def reread(pipeline: Pipeline, ranges: list[OffsetRange], batches: list[str], group: str) -> Flush:
    """The flush of `batches` over `ranges`, re-read from Kafka: each batch is validated on
    its own, exactly as it was first applied, so its verdicts (duplicates) are the same."""
    records = read_ranges(
        pipeline.settings.kafka,
        pipeline.topic,
        f"{group}-replay",
        covering(r for batch in batches for r in ranges_of(batch)),
    ).records
    parts = {batch: within(records, ranges_of(batch)) for batch in batches}
    missing = [b for b, part in parts.items() if MicroBatch(pipeline.topic, part).batch_id != b]
    if missing:
        raise RecordsGoneError(
            f"records of {', '.join(missing)} no longer read back whole (retention or compaction)"
        )
    frames = [validate(part, pipeline.writer.rules).events for part in parts.values()]
    events = pl.concat(frames, how="vertical_relaxed")
    return Flush(ranges=ranges, batches=batches, events=within(events, ranges), replay=True)


def replay_entry(pipeline: Pipeline, entry: dict[str, Any], group: str) -> BatchReport:
    """Re-apply an unfinished ledger entry (batch or entity flush) over exactly its ranges."""
    ranges = [OffsetRange(r["partition"], r["first"], r["last"]) for r in entry["ranges"]]
    log.warning("replaying unfinished %s", entry["_id"])
    if entry.get("kind") == writes.ENTITY_FLUSH:
        flush = reread(pipeline, ranges, list(entry["batches"]), group)
        flush = replace(flush, marks_by_topic=marks_by_topic(entry))
        reports = flush_isolating(pipeline.writer, flush)
        return reports[0] if len(reports) == 1 else BatchReport.merged(entry["_id"], reports)
    batch = read_ranges(pipeline.settings.kafka, pipeline.topic, f"{group}-replay", ranges)
    if batch.batch_id != entry["_id"]:
        raise RecordsGoneError(
            f"the records of {entry['_id']} now read as {batch.batch_id} "
            "(retention or compaction removed some)"
        )
    target = Target.again(batch, marks_by_topic=marks_by_topic(entry))
    reports = apply_isolating(pipeline, batch, target)
    return reports[0] if len(reports) == 1 else BatchReport.merged(entry["_id"], reports)


class AggregatingConsumer:
    """One member of the consumer group; joins on `__enter__`, leaves on `__exit__`."""

    def __init__(self, pipeline: Pipeline, *, group: str | None = None) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self.topic = pipeline.topic
        self.db = pipeline.db
        self.group = group or self.settings.kafka.consumer_group
        self._consumer: Consumer | None = None
        self._admin: AdminClient | None = None  # opened on entering, before joining the group
        self._replayed: list[BatchReport] = []
        self.assigned: set[int] = set()
        self.revocations = Revocations()
        self._polled: tuple[str, float] = ("", 0.0)
        """The last batch polled, and when (monotonic)."""
        self.held: set[int] = set()
        """Assigned partitions held (paused) behind an entry Kafka can no longer replay."""
        limits = self.settings.consumer
        self.flusher = EntityFlusher(
            IsolatingFlushes(pipeline.writer),
            EntityBuffer(limits.entity_flush_seconds, limits.entity_flush_events),
            background=limits.entity_flush_seconds > 0,  # 0: each batch flushed before the next
        )

    @property
    def flushes(self) -> list[BatchReport]:
        """Entity flushes written so far (of batches this member applied)."""
        return [report for report in self.flusher.done if not report.replay]

    @property
    def replays(self) -> list[BatchReport]:
        """Unfinished work of earlier owners written so far: ledger entries, then re-read
        entity flushes."""
        return self._replayed + [report for report in self.flusher.done if report.replay]

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        check_kafka(self.settings.kafka)
        # Asked once here so that its first request is not one inside a handover (see
        # `admin_client`): a handover that asks what Kafka still holds answers in milliseconds.
        self._admin = admin_client(self.settings.kafka)
        ensure_topic(self.settings.kafka, self.topic, admin=self._admin)
        self._consumer = make_consumer(self.settings.kafka, self.group)
        self._consumer.subscribe([self.topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._consumer is not None:
            if exc_type is None:
                self.flusher.flush_all()
            else:  # the database may be what failed: the next owner re-reads what waits
                self.flusher.discard()
            self._consumer.close()  # leaves the group at once: partitions move without waiting
            self._consumer = None
        self.flusher.close()

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("use AggregatingConsumer as a context manager")
        return self._consumer

    # --- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        started = time.monotonic()
        laps = Laps()  # a slow handover's log line says which step was slow
        numbers = [tp.partition for tp in partitions]
        blocked: set[int] = set()
        with laps("ledger"):
            unfinished = list(writes.unfinished_batches(self.db, self.topic, numbers))
        for entry in unfinished:
            try:
                with laps("replays"):
                    self._replayed.append(replay_entry(self.pipeline, entry, self.group))
            except RecordsGoneError as gone:
                blocked |= self._cannot_replay(entry["_id"], entry["partitions"], gone)
        with laps("waiting"):
            owed, batches = backlog(entity_progress(self.db, self.topic, numbers))
        owed = [r for r in owed if r.partition not in blocked]
        batches = [b for b in batches if not blocked & {r.partition for r in ranges_of(b)}]
        if batches:
            read = covering(r for batch in batches for r in ranges_of(batch))  # as reread does
            with laps("kafka"):
                missing = unreadable(read, self._offset_bounds({r.partition for r in read}))
            if missing:
                lost = RecordsGoneError(f"Kafka no longer holds {'; '.join(missing)}")
                flush_id = writes.record_unreadable_flush(self.db, self.topic, owed, batches, lost)
                blocked |= self._cannot_replay(flush_id, [r.partition for r in owed], lost)
            else:
                # Read in the flush's thread: the partitions are read on meanwhile. If Kafka
                # lost the records since this check, that flush fails (and with it this
                # member), and the next owner finds them gone here.
                log.info("queued %d batches waiting for an entity flush to re-read", len(batches))
                self.flusher.queue(Reread(owed, batches, self._reread))
        with laps("offsets"):
            resume = stored_offsets(self.db, self.topic)
            for tp in partitions:
                if tp.partition in resume:
                    tp.offset = resume[tp.partition]
            consumer.incremental_assign(partitions)
        self.assigned |= set(numbers)
        if blocked & set(numbers):
            # Held, not read: counting them on would build over what the entry still owes.
            consumer.pause([tp for tp in partitions if tp.partition in blocked])
            self.held |= blocked & set(numbers)
        # The time every newly assigned partition waited before it was read (handover cost).
        log.info(
            "assigned partitions %s of %s after %.2f s (%s)",
            sorted(numbers),
            self.topic,
            time.monotonic() - started,
            laps,
        )

    def _reread(self, ranges: list[OffsetRange], batches: list[str]) -> Flush:
        return reread(self.pipeline, ranges, batches, self.group)

    def _offset_bounds(self, partitions: set[int]) -> dict[int, tuple[int, int]]:
        """Kafka's (oldest, next) offsets of `partitions`, asked through the admin client."""
        if self._admin is None:
            raise RuntimeError("use AggregatingConsumer as a context manager")
        return offset_bounds(self._admin, self.topic, sorted(partitions), 10)

    def _cannot_replay(self, entry_id: str, partitions: list[int], gone: Exception) -> set[int]:
        """Report an entry whose records Kafka lost; its partitions wait for an operator."""
        writes.ledger_fail(self.db, entry_id, f"cannot be replayed: {gone}")
        log.error(
            "%s cannot be replayed: %s. Its partitions %s are held until `pulse ledger resolve "
            "%s` records its records as lost.",
            entry_id,
            gone,
            sorted(partitions),
            entry_id,
        )
        return set(partitions)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are applied whole before the next consume() call, and this callback runs
        # inside consume(): there is never a half-applied batch of ours to finish here. What
        # waits for an entity flush stays listed in MongoDB for the next owner, who re-reads
        # it; writing it here would stall every partition of the group's handover meanwhile.
        started = time.monotonic()
        revoked = {tp.partition for tp in partitions}
        self.flusher.release(revoked)
        self.revocations.revoked(revoked)
        self.assigned -= revoked
        self.held -= revoked
        # The time every partition of ours stopped being read (handover cost).
        log.info(
            "revoked partitions %s of %s after waiting %.2f s for the flush being written",
            sorted(revoked),
            self.topic,
            time.monotonic() - started,
        )

    # --- draining ----------------------------------------------------------------------

    def poll_batch(
        self, max_events: int | None = None, max_wait: float | None = None
    ) -> MicroBatch | None:
        """The next micro-batch, closed by size, wait, linger or age (pulse/kafka/source.py)."""
        limits = self.settings.consumer
        closing = Closing(
            limit=max_events or limits.max_batch_events,
            wait=max_wait if max_wait is not None else limits.max_batch_wait_seconds,
            linger=limits.batch_linger_seconds,
            age=limits.max_batch_age_seconds,
        )
        polled = poll_batch(self.consumer, self.topic, closing, self.revocations)
        self._resume(polled.dropped & self.assigned)
        if polled.batch is not None:
            self._polled = (polled.batch.batch_id, time.monotonic())
        return polled.batch

    def lag(self) -> dict[int, int]:
        """Records not yet applied per assigned partition (held ones left out: nothing of
        them is read until an operator resolves what holds them)."""
        marks = self._offset_bounds(self.assigned - self.held)
        return records_behind(stored_offsets(self.db, self.topic), marks)

    def caught_up(self) -> bool:
        """Nothing left to count on the assigned partitions. While the last fetches show more
        on its way it says so without asking Kafka or MongoDB (a drain asks after every empty
        poll)."""
        partitions = sorted(self.assigned - self.held)
        if fetched_behind(self.consumer, self.topic, partitions):
            return False
        return not any(self.lag().values())

    def process(self, batch: MicroBatch, consume_seconds: float = 0.0) -> BatchReport:
        """Apply one batch, commit its offsets to Kafka, then start the entity flush if due.

        Records of partitions another member counted past the batch's start are dropped, and
        those partitions, if still ours, read again from where MongoDB says counting stands.
        """
        polled_id, polled_at = self._polled
        fresh = polled_id == batch.batch_id and time.monotonic() - polled_at < FRESH_SECONDS
        try:
            target = Target.polled(batch, fresh=fresh)
            reports = apply_isolating(self.pipeline, batch, target, consume_seconds=consume_seconds)
        except StaleBatchError as stale:
            log.warning("%s", stale)
            self._resume(stale.partitions & self.assigned)
            rest = batch.without(stale.partitions)
            if not rest.size:
                return BatchReport.nothing(stale.batch_id)
            return self.process(rest, consume_seconds)
        for report in reports:
            self._commit(report.ranges)
            self.flusher.add(report)
        self.flusher.flush_due()
        return reports[0] if len(reports) == 1 else BatchReport.merged(batch.batch_id, reports)

    def flush_due(self) -> None:
        """Start the entity flush if its time or size has come (also while idle)."""
        self.flusher.flush_due()

    def flush_entities(self) -> None:
        """Write everything waiting for an entity flush, and wait until it is written."""
        self.flusher.flush_all()

    def hold_flushes(self) -> None:
        """Start no entity flush unless the buffer is full: a successor is about to join."""
        self.flusher.hold()

    def hand_over(self) -> None:
        """Leave what waits for an entity flush to the next owner of our partitions (a
        successor already in the group): only the flush being written is waited for."""
        self.flusher.release(set(self.assigned))

    def _resume(self, partitions: set[int]) -> None:
        """Read `partitions` again from the offsets stored in MongoDB (where counting stands)."""
        if not partitions:
            return
        stored = stored_offsets(self.db, self.topic)
        for partition in sorted(partitions):
            offset = stored.get(partition, OFFSET_BEGINNING)
            try:
                self.consumer.seek(TopicPartition(self.topic, partition, offset))
            except KafkaException as exc:  # not fetching yet: it starts at the stored offset
                log.info("partition %d not repositioned: %s", partition, exc.args[0].str())
            log.info("partition %d of %s reads again from offset %d", partition, self.topic, offset)

    def _commit(self, ranges: list[OffsetRange]) -> None:
        """Tell Kafka too (lag tools read it); MongoDB's offsets stay the source of truth.

        Asynchronous: a synchronous commit in flight when the broker restarts can wait forever
        (confluent-kafka-python#1801; seen here as a consumer that counted a batch, then
        never polled again), and nothing here needs to know when Kafka has it."""
        offsets = [TopicPartition(self.topic, r.partition, r.last + 1) for r in ranges]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as exc:
            # After a rebalance the partition may belong to another member: harmless here.
            log.warning("offset commit to Kafka skipped: %s", exc.args[0].str())


@contextmanager
def consuming(
    settings: Settings,
    *,
    topic: str | None = None,
    group: str | None = None,
    after_step: StepHook | None = None,
) -> Iterator[AggregatingConsumer]:
    """Open the pipeline and join the group; leave and close everything on exit."""
    with (
        open_pipeline(settings, topic, after_step=after_step) as pipeline,
        AggregatingConsumer(pipeline, group=group) as consumer,
    ):
        yield consumer
