"""Reading records from Kafka into micro-batches: the linger-closed poll and exact range reads."""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from pulse.config import KafkaSettings
from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.kafka.clients import consumer as make_consumer

log = logging.getLogger(__name__)

CONSUME_CHUNK = 10_000
"""Messages per consume() call: far faster than one poll() per message."""


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for a while.

    Holding tens of thousands of messages makes it run again and again over all of them: in
    `bench/consumer.py`'s setting, reading 300k messages took 0.7-1.8 s with it and 0.35-0.4 s
    without. Messages hold no reference cycles, so they are freed as usual meanwhile; other
    cyclic garbage waits for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass
class Revocations:
    """Which partitions were revoked, and when (a running count), so that a poll can drop the
    records it gathered for a partition before that partition was taken away."""

    count: int = 0
    _last: dict[int, int] = field(default_factory=dict)  # one entry per partition: bounded

    def revoked(self, partitions: Iterable[int]) -> None:
        self.count += 1
        for partition in partitions:
            self._last[partition] = self.count

    def since(self, mark: int) -> set[int]:
        """Partitions revoked after `count` was `mark`."""
        return {partition for partition, when in self._last.items() if when > mark}


@dataclass(frozen=True)
class Polled:
    """A poll's micro-batch (None: no records), and the partitions whose gathered records it
    dropped because they were revoked meanwhile (if the member owns one again, its position
    has moved past records it never counted: it must seek back)."""

    batch: MicroBatch | None
    dropped: set[int]


@dataclass(frozen=True)
class Closing:
    """When a micro-batch closes: at `limit` records; `wait` seconds at most for the first;
    once none arrive for `linger` seconds, or `age` seconds after its first record (a steady
    stream never pauses for `linger`; a backlog fills the batch at once)."""

    limit: int
    wait: float
    linger: float
    age: float


def poll_batch(
    consumer: Consumer, topic: str, closing: Closing, revocations: Revocations | None = None
) -> Polled:
    """The next micro-batch, closed as `closing` says. Records of a partition revoked during
    the poll are dropped: the batch holds only records of partitions the member owned
    throughout."""
    with cyclic_gc_paused():
        return _gather(consumer, topic, closing, revocations or Revocations())


def _gather(consumer: Consumer, topic: str, closing: Closing, revocations: Revocations) -> Polled:
    limit, wait, linger, age = closing.limit, closing.wait, closing.linger, closing.age
    deadline = time.monotonic() + wait
    messages: list[Message] = []
    dropped: set[int] = set()
    while len(messages) < limit:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        mark = revocations.count
        # consume() blocks until it has num_messages or the timeout passes: ask for one record
        # until the batch has some, then for as many as are already there.
        chunk = consumer.consume(
            num_messages=min(CONSUME_CHUNK, limit - len(messages)) if messages else 1,
            timeout=min(remaining, linger) if messages else remaining,
        )
        usable = [message for message in chunk if usable_message(message)]
        # A rebalance callback ran inside that call: what this batch holds of a revoked
        # partition, gathered before or in that call, may already be another member's.
        revoked = revocations.since(mark)
        if revoked:
            dropped |= {m.partition() or 0 for m in (*messages, *usable)} & revoked
            messages = [m for m in messages if m.partition() not in revoked]
            usable = [m for m in usable if m.partition() not in revoked]
        if messages and not usable:
            break  # nothing more within the linger time: the batch is complete
        if usable and not messages:
            deadline = min(deadline, time.monotonic() + age)
        messages += usable
    return Polled(to_batch(topic, messages) if messages else None, dropped)


class RecordsGoneError(RuntimeError):
    """Kafka no longer holds (or never held) records of ranges that must be read again."""


def read_ranges(
    kafka: KafkaSettings, topic: str, group: str, ranges: list[OffsetRange], timeout: float = 120.0
) -> MicroBatch:
    """Read exactly the given offset ranges with a group-less reader (never commits).

    Ranges Kafka no longer holds whole (retention deleted their start, or the log ends before
    their end) raise RecordsGoneError at once, naming them. A range read is complete once the
    reader's position passes its end, so offsets that hold no record (compaction, transaction
    markers) do not make it wait.
    """
    reader = make_consumer(kafka, group)
    try:
        marks = {
            r.partition: reader.get_watermark_offsets(TopicPartition(topic, r.partition), 10)
            for r in ranges
        }
        gone = unreadable(ranges, marks)
        if gone:
            raise RecordsGoneError(f"Kafka no longer holds {'; '.join(gone)}")
        reader.assign([TopicPartition(topic, r.partition, r.first) for r in ranges])
        wanted = {r.partition: r.last for r in ranges}
        done: set[int] = set()
        messages: list[Message] = []
        # consume() returns once it has num_messages or its timeout passed: asking for what the
        # ranges still hold returns as soon as it arrived (a handover waits on this read). Fewer
        # may exist (compaction, transaction markers): then the position check below ends it.
        left = sum(r.last - r.first + 1 for r in ranges)
        deadline = time.monotonic() + timeout
        while len(done) < len(wanted):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"could not re-read {', '.join(map(str, ranges))} in {timeout:.0f} s"
                )
            chunk = reader.consume(num_messages=max(1, min(CONSUME_CHUNK, left)), timeout=1.0)
            left -= len(chunk)
            for message in chunk:
                if not usable_message(message):
                    continue
                partition, offset = message.partition(), message.offset()
                if partition is None or offset is None or offset > wanted[partition]:
                    continue
                messages.append(message)
            positions = reader.position([TopicPartition(topic, p) for p in wanted])
            done |= {tp.partition for tp in positions if tp.offset > wanted[tp.partition]}
    finally:
        reader.close()
    return to_batch(topic, messages)


def unreadable(
    ranges: Iterable[OffsetRange], marks: Mapping[int, tuple[int, int] | None]
) -> list[str]:
    """The ranges Kafka cannot give back whole, each with why, from each partition's (oldest,
    next) offsets; empty when every range can be read."""
    return [gone for r in ranges if (gone := _gone(r, marks.get(r.partition)))]


def _gone(wanted: OffsetRange, marks: tuple[int, int] | None) -> str:
    """Why Kafka cannot give back the range ('' when it can), from its (low, high) offsets."""
    low, high = marks or (0, 0)
    if wanted.first < low:
        return f"{wanted} (retention: p{wanted.partition} now starts at offset {low})"
    if wanted.last >= high:
        return f"{wanted} (p{wanted.partition} ends at offset {high - 1})"
    return ""


def fetched_behind(consumer: Consumer, topic: str, partitions: Iterable[int]) -> bool:
    """True when the last fetch of one of `partitions` saw records past the consumer's
    position: more is on its way, so nothing is caught up. Asks no broker (positions and the
    watermarks fetches bring); False also when that is not known yet."""
    wanted = [TopicPartition(topic, partition) for partition in partitions]
    for position in consumer.position(wanted) if wanted else []:
        _, high = consumer.get_watermark_offsets(position, cached=True)
        if 0 <= position.offset < high:
            return True
    return False


def usable_message(message: Message) -> bool:
    """True for a data message; raises on fatal errors, skips informational events."""
    error = message.error()
    if error is None:
        return True
    if error.fatal():
        raise KafkaException(error)
    if error.code() != KafkaError._PARTITION_EOF:
        log.warning("consumer error: %s", error.str())
    return False


def to_batch(topic: str, messages: list[Message]) -> MicroBatch:
    partitions, offsets, stamps, keys, values = [], [], [], [], []
    for message in messages:
        partitions.append(message.partition() or 0)
        offsets.append(message.offset() or 0)
        stamps.append(message.timestamp()[1])
        key, value = message.key(), message.value()
        keys.append(key if isinstance(key, bytes) or key is None else str(key).encode())
        values.append(value if isinstance(value, bytes) or value is None else str(value).encode())
    return MicroBatch.from_columns(topic, partitions, offsets, stamps, keys, values)
