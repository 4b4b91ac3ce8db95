"""The aggregating consumer: drain micro-batches, validate, aggregate, upsert, then commit.

Order of one batch (see docs/consumer.md for why each step is where it is):
  1. ledger entry 'writing' with the batch's offset ranges
  2. dead letters, then guarded upserts of users, items, item x minute, minutes, totals
  3. offsets recorded in MongoDB (the source of truth for where to resume)
  4. ledger entry 'applied'; offsets committed to Kafka (for lag monitoring and tools)
On (re)assignment, unfinished ledger entries touching the new partitions are replayed over
exactly their recorded ranges before anything new is read, and reading resumes from the
offsets stored in MongoDB.
"""

from __future__ import annotations

import logging
import time
from types import TracebackType
from typing import Any, Self

import polars as pl
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from pulse.alerts.engine import Alerting
from pulse.config import Settings
from pulse.ingest.batch import MicroBatch, OffsetRange, batch_id
from pulse.ingest.validate import ValidationRules
from pulse.kafka.clients import consumer as make_consumer
from pulse.kafka.clients import ensure_topic
from pulse.kafka.clients import producer as make_producer
from pulse.pipeline.apply import BatchReport, BatchWriter
from pulse.preflight import check_kafka, check_mongo
from pulse.store import writes
from pulse.store.client import database, mongo_client
from pulse.store.statements import Guard

log = logging.getLogger(__name__)

_CONSUME_CHUNK = 10_000  # messages per consume() call; NOTES: ~30x faster than poll() each


class AggregatingConsumer:
    """One member of the consumer group; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        group: str | None = None,
        join_group: bool = True,
    ) -> None:
        self.settings = settings
        self.join_group = join_group
        self.topic = topic or settings.kafka.topic
        self.group = group or settings.kafka.consumer_group
        self.types = settings.generator.interaction_types
        limits = settings.consumer
        self.rules = ValidationRules(
            interaction_types=self.types,
            max_record_bytes=limits.max_record_bytes,
            max_age_ms=limits.max_event_age_seconds * 1000,
            max_lead_ms=limits.max_event_lead_seconds * 1000,
        )
        check_mongo(settings.mongo)  # before the alert rules are read from it
        self._mongo = mongo_client(settings.mongo, app_name="pulse-consumer")
        self.db = database(self._mongo, settings.mongo)
        # Invalid alert rules stop the consumer here, with the rule and field named.
        self.alerting = Alerting(self.db, settings.alerts)
        self.writer = BatchWriter(
            self.db, self.topic, self.rules, self._send_to_dlq_topic, self.alerting
        )
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self.replays: list[BatchReport] = []
        self.assigned: set[int] = set()

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        if self.join_group:
            check_kafka(self.settings.kafka)
        writes.ensure_indexes(self.db)
        if not self.join_group:
            return self  # replays only: they read exact ranges with a reader of their own
        ensure_topic(self.settings.kafka, self.topic)
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
            self._consumer.close()  # leaves the group at once: partitions move without waiting
            self._consumer = None
        if self._dlq is not None:
            self._dlq.flush(30)
        self.alerting.close()
        self._mongo.close()

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("use AggregatingConsumer as a context manager")
        return self._consumer

    # --- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        for entry in writes.unfinished_batches(self.db, self.topic, numbers):
            self.replays.append(self.replay(entry))
        resume = writes.stored_offsets(self.db, self.topic)
        for tp in partitions:
            if tp.partition in resume:
                tp.offset = resume[tp.partition]
        consumer.incremental_assign(partitions)
        self.assigned |= set(numbers)
        log.info("assigned partitions %s of %s", sorted(numbers), self.topic)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Batches are applied whole before the next consume() call, and this callback runs
        # inside consume(): there is never a half-applied batch of ours to finish here.
        self.assigned -= {tp.partition for tp in partitions}
        log.info(
            "revoked partitions %s of %s", sorted(tp.partition for tp in partitions), self.topic
        )

    # --- draining ----------------------------------------------------------------------

    def poll_batch(
        self, max_events: int | None = None, max_wait: float | None = None
    ) -> MicroBatch | None:
        """Drain up to `max_events` records: wait at most `max_wait` seconds for the first, then
        close the batch once no more arrive for the linger time (a backlog fills it at once)."""
        limit = max_events or self.settings.consumer.max_batch_events
        wait = max_wait if max_wait is not None else self.settings.consumer.max_batch_wait_seconds
        linger = self.settings.consumer.batch_linger_seconds
        deadline = time.monotonic() + wait
        messages: list[Message] = []
        while len(messages) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            # consume() blocks until it has num_messages or the timeout passes: ask for one
            # record until the batch has some, then for as many as are already there.
            chunk = self.consumer.consume(
                num_messages=min(_CONSUME_CHUNK, limit - len(messages)) if messages else 1,
                timeout=min(remaining, linger) if messages else remaining,
            )
            usable = [message for message in chunk if _usable(message)]
            if messages and not usable:
                break  # nothing more within the linger time: the batch is complete
            messages += usable
        if not messages:
            return None
        return _to_batch(self.topic, messages)

    def lag(self) -> dict[int, int]:
        """Records not yet applied per assigned partition (high watermark - stored offset)."""
        resume = writes.stored_offsets(self.db, self.topic)
        lags = {}
        for partition in sorted(self.assigned):
            low, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10
            )
            lags[partition] = max(0, high - max(resume.get(partition, low), low))
        return lags

    # --- applying ----------------------------------------------------------------------

    def process(self, batch: MicroBatch, consume_seconds: float = 0.0) -> BatchReport:
        """Validate, aggregate and apply one batch, then commit its offsets."""
        report = self._apply(batch, replay=False, consume_seconds=consume_seconds)
        self._commit(report.ranges)
        return report

    def replay(self, entry: dict[str, Any]) -> BatchReport:
        """Re-apply an unfinished ledger entry over exactly its recorded offset ranges."""
        ranges = [OffsetRange(r["partition"], r["first"], r["last"]) for r in entry["ranges"]]
        log.warning("replaying unfinished batch %s", entry["_id"])
        batch = self._read_ranges(ranges)
        if batch.batch_id != entry["_id"]:
            raise RuntimeError(
                f"batch {entry['_id']} cannot be replayed: its records now read as "
                f"{batch.batch_id} (retention or compaction removed some)"
            )
        return self._apply(batch, replay=True, consume_seconds=0.0)

    def _apply(self, batch: MicroBatch, *, replay: bool, consume_seconds: float) -> BatchReport:
        ranges = batch.ranges()
        return self.writer.apply(
            batch,
            batch_id=batch_id(self.topic, ranges),
            guard=Guard(tuple(ranges)),
            ranges=ranges,
            replay=replay,
            consume_seconds=consume_seconds,
        )

    def _send_to_dlq_topic(self, dead: pl.DataFrame) -> None:
        """Also publish dead letters to PULSE_KAFKA_DLQ_TOPIC (raw value, reason header)."""
        dlq_topic = self.settings.kafka.dlq_topic
        if not dlq_topic:
            return
        if self._dlq is None:
            self._dlq = make_producer(self.settings.kafka)
        for row in dead.iter_rows(named=True):
            self._dlq.produce(
                dlq_topic,
                row["value"],
                row["key"],
                headers={
                    "pulse.reason": row["reason"].encode(),
                    "pulse.source": f"{self.topic}:{row['partition']}:{row['offset']}".encode(),
                },
            )
        self._dlq.flush(30)

    def _commit(self, ranges: list[OffsetRange]) -> None:
        """Tell Kafka too (lag tools read it); MongoDB's offsets stay the source of truth."""
        offsets = [TopicPartition(self.topic, r.partition, r.last + 1) for r in ranges]
        try:
            self.consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # After a rebalance the partition may belong to another member: harmless here.
            log.warning("offset commit to Kafka skipped: %s", exc.args[0].str())

    def _read_ranges(self, ranges: list[OffsetRange], timeout: float = 120.0) -> MicroBatch:
        """Read exactly the given offset ranges with a group-less reader (never commits)."""
        reader = make_consumer(self.settings.kafka, f"{self.group}-replay")
        try:
            reader.assign([TopicPartition(self.topic, r.partition, r.first) for r in ranges])
            wanted = {r.partition: r.last for r in ranges}
            done: set[int] = set()
            messages: list[Message] = []
            deadline = time.monotonic() + timeout
            while len(done) < len(wanted):
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"could not re-read {', '.join(map(str, ranges))} in {timeout:.0f} s"
                    )
                for message in reader.consume(num_messages=_CONSUME_CHUNK, timeout=1.0):
                    if not _usable(message):
                        continue
                    partition, offset = message.partition(), message.offset()
                    if partition is None or offset is None or offset > wanted[partition]:
                        continue
                    messages.append(message)
                    if offset == wanted[partition]:
                        done.add(partition)
        finally:
            reader.close()
        return _to_batch(self.topic, messages)


def _usable(message: Message) -> bool:
    """True for a data message; raises on fatal errors, skips informational events."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error.str())
    return False


def _to_batch(topic: str, messages: list[Message]) -> MicroBatch:
    partitions, offsets, stamps, keys, values = [], [], [], [], []
    for message in messages:
        partitions.append(message.partition() or 0)
        offsets.append(message.offset() or 0)
        stamps.append(message.timestamp()[1])
        key, value = message.key(), message.value()
        keys.append(key if isinstance(key, bytes) or key is None else str(key).encode())
        values.append(value if isinstance(value, bytes) or value is None else str(value).encode())
    return MicroBatch.from_columns(topic, partitions, offsets, stamps, keys, values)
