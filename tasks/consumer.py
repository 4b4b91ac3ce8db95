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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from tasks import store
from tasks.aggregate import aggregate
from tasks.batch import MicroBatch, OffsetRange, batch_id
from tasks.kafka import consumer as make_consumer
from tasks.kafka import ensure_topic
from tasks.kafka import producer as make_producer
from tasks.mongo import database, mongo_client
from tasks.settings import Settings
from tasks.updates import (
    ITEM_MINUTES,
    ITEMS,
    MINUTES,
    TOTALS,
    USERS,
    Guard,
    dead_letter_statements,
    entity_updates,
    item_minute_updates,
    minute_updates,
    totals_update,
)
from tasks.validation import ValidationRules, validate

log = logging.getLogger(__name__)

_CONSUME_CHUNK = 10_000  # messages per consume() call; NOTES: ~30x faster than poll() each


@dataclass(frozen=True)
class BatchReport:
    """What applying one micro-batch did; also stored in its ledger entry."""

    batch_id: str
    ranges: list[OffsetRange]
    records: int
    valid: int
    dead_lettered: int
    docs_written: int
    already_applied: int
    new_users: int
    new_items: int
    replay: bool
    seconds: dict[str, float] = field(default_factory=dict)

    def ledger_stats(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "dead_lettered": self.dead_lettered,
            "docs_written": self.docs_written,
            "already_applied": self.already_applied,
            "new_users": self.new_users,
            "new_items": self.new_items,
            "seconds": self.seconds,
        }


class AggregatingConsumer:
    """One member of the consumer group; use as a context manager."""

    def __init__(
        self,
        settings: Settings,
        *,
        topic: str | None = None,
        group: str | None = None,
    ) -> None:
        self.settings = settings
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
        self._mongo = mongo_client(settings.mongo, app_name="pulse-consumer")
        self.db = database(self._mongo, settings.mongo)
        self._consumer: Consumer | None = None
        self._dlq: Producer | None = None
        self.replays: list[BatchReport] = []
        self.assigned: set[int] = set()

    # --- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> Self:
        store.ensure_indexes(self.db)
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
        self._mongo.close()

    @property
    def consumer(self) -> Consumer:
        if self._consumer is None:
            raise RuntimeError("use AggregatingConsumer as a context manager")
        return self._consumer

    # --- rebalancing -------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = [tp.partition for tp in partitions]
        for entry in store.unfinished_batches(self.db, self.topic, numbers):
            self.replays.append(self.replay(entry))
        resume = store.stored_offsets(self.db, self.topic)
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
        """Drain up to `max_events` records, waiting at most `max_wait` seconds for them."""
        limit = max_events or self.settings.consumer.max_batch_events
        wait = max_wait if max_wait is not None else self.settings.consumer.max_batch_wait_seconds
        deadline = time.monotonic() + wait
        messages: list[Message] = []
        while len(messages) < limit:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chunk = self.consumer.consume(
                num_messages=min(_CONSUME_CHUNK, limit - len(messages)), timeout=remaining
            )
            messages += [message for message in chunk if _usable(message)]
        if not messages:
            return None
        return _to_batch(self.topic, messages)

    def lag(self) -> dict[int, int]:
        """Records not yet applied per assigned partition (high watermark - stored offset)."""
        resume = store.stored_offsets(self.db, self.topic)
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
        bid = batch_id(self.topic, ranges)
        store.ledger_begin(self.db, bid, self.topic, ranges, batch.size)
        try:
            report = self._write(batch, bid, ranges, replay, consume_seconds)
        except Exception as exc:
            store.ledger_fail(self.db, bid, f"{type(exc).__name__}: {exc}")
            raise
        store.ledger_finish(self.db, bid, report.ledger_stats())
        return report

    def _write(
        self,
        batch: MicroBatch,
        bid: str,
        ranges: list[OffsetRange],
        replay: bool,
        consume_seconds: float,
    ) -> BatchReport:
        with _timer() as validating:
            verdict = validate(batch.records, self.rules)
        with _timer() as aggregating:
            aggregates = aggregate(verdict.events, self.types)
        with _timer() as writing:
            now = datetime.now(UTC)
            guard = Guard(tuple(ranges))
            self._dead_letter(verdict.dead, bid, now)
            results = {
                USERS: store.apply(
                    self.db,
                    USERS,
                    entity_updates(aggregates.users, "user_id", guard, bid, self.types),
                ),
                ITEMS: store.apply(
                    self.db,
                    ITEMS,
                    entity_updates(aggregates.items, "item_id", guard, bid, self.types),
                ),
                ITEM_MINUTES: store.apply(
                    self.db, ITEM_MINUTES, item_minute_updates(aggregates, guard, self.types)
                ),
                MINUTES: store.apply(
                    self.db, MINUTES, minute_updates(aggregates, guard, self.types)
                ),
            }
            new_users = self._created(
                USERS, aggregates.users["user_id"].to_list(), results[USERS], bid
            )
            new_items = self._created(
                ITEMS, aggregates.items["item_id"].to_list(), results[ITEMS], bid
            )
            totals = totals_update(
                aggregates,
                guard,
                self.types,
                dead_lettered=verdict.dead.height,
                new_users=new_users,
                new_items=new_items,
                applied_at=now,
            )
            results[TOTALS] = store.apply(self.db, TOTALS, [totals])
            store.advance_offsets(self.db, self.topic, ranges)
        return BatchReport(
            batch_id=bid,
            ranges=ranges,
            records=batch.size,
            valid=verdict.events.height,
            dead_lettered=verdict.dead.height,
            docs_written=sum(r.upserted + r.modified for r in results.values()),
            already_applied=sum(r.already_applied for r in results.values()),
            new_users=new_users,
            new_items=new_items,
            replay=replay,
            seconds={
                "consume": round(consume_seconds, 4),
                "validate": round(validating.seconds, 4),
                "aggregate": round(aggregating.seconds, 4),
                "write": round(writing.seconds, 4),
            },
        )

    def _created(self, collection: str, ids: list[str], result: store.ApplyResult, bid: str) -> int:
        """Documents this batch created; upsert counts are exact unless part was applied before."""
        if result.already_applied == 0:
            return result.upserted
        return store.count_created(self.db, collection, ids, bid)

    def _dead_letter(self, dead: Any, bid: str, now: datetime) -> None:
        if dead.height == 0:
            return
        store.apply(self.db, "dead_letters", dead_letter_statements(dead, self.topic, bid, now))
        dlq_topic = self.settings.kafka.dlq_topic
        if dlq_topic:
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


@dataclass
class _Elapsed:
    seconds: float = 0.0


@contextmanager
def _timer() -> Iterator[_Elapsed]:
    elapsed = _Elapsed()
    started = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed.seconds = time.perf_counter() - started
