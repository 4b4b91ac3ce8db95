"""Pipeline lag: what Kafka holds past the offsets MongoDB says are counted.

The counted offsets come from the caller (pulse/store/reads.py:stored_offsets); this module asks
Kafka only, so that neither stage imports the other's client.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from confluent_kafka import Consumer, TopicPartition

from pulse.config import KafkaSettings
from pulse.kafka.clients import consumer as make_consumer


def next_to_count(stored: Mapping[int, int], partition: int, low: int) -> int:
    """The partition's first record not counted yet: the stored offset, or the oldest record
    Kafka still holds when retention has moved past it (or nothing was stored yet)."""
    return max(stored.get(partition, low), low)


def watermarks(
    reader: Consumer, topic: str, partitions: Iterable[int], timeout: float
) -> dict[int, tuple[int, int]]:
    """Kafka's (oldest, next) offsets of each partition."""
    return {
        partition: reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        for partition in partitions
    }


def records_behind(
    stored: Mapping[int, int], watermarks: Mapping[int, tuple[int, int]]
) -> dict[int, int]:
    """Records not counted yet per partition, from Kafka's (low, high) watermarks."""
    return {
        partition: max(0, high - next_to_count(stored, partition, low))
        for partition, (low, high) in sorted(watermarks.items())
    }


@dataclass(frozen=True)
class PipelineLag:
    """How far the counted figures trail what Kafka holds."""

    partitions: pl.DataFrame
    """partition, end_offset, lag (records), lag_seconds (age of its oldest uncounted record)."""

    @property
    def records(self) -> int:
        return int(self.partitions["lag"].sum()) if self.partitions.height else 0

    @property
    def seconds(self) -> float:
        """Age of the oldest record not counted yet; 0 when everything is counted."""
        if not self.partitions.height:
            return 0.0
        return float(self.partitions.select(pl.col("lag_seconds").max()).item() or 0.0)


class LagReader:
    """A Kafka reader for pipeline lag, opened once and kept: a dashboard refresh or a metrics
    scrape must not open a client each time. Safe to share between threads; for one-off reads,
    `contextlib.closing(LagReader(kafka))`."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._opened: Consumer | None = None  # opened on first use: building one does no I/O
        self._lock = threading.Lock()

    @property
    def _reader(self) -> Consumer:
        if self._opened is None:
            self._opened = make_consumer(
                self._kafka, group="pulse-dashboard", **{"socket.timeout.ms": 3_000}
            )
        return self._opened

    def lag(
        self, stored: Mapping[int, int], topic: str, now: datetime | None = None
    ) -> PipelineLag:
        """Records not yet aggregated per partition (Kafka's end offset minus the `stored`
        offset, MongoDB's next offset to count) and, where there are some, how long ago the
        oldest of them reached Kafka."""
        with self._lock:
            metadata = self._reader.list_topics(topic, timeout=3)
            known = metadata.topics.get(topic)
            partitions = sorted(known.partitions) if known is not None else []
            marks = watermarks(self._reader, topic, partitions, timeout=3)
            behind = records_behind(stored, marks)
            rows = {
                partition: {
                    "partition": partition,
                    "end_offset": high,
                    "lag": behind[partition],
                    "next": next_to_count(stored, partition, low),
                    "lag_seconds": 0.0,
                }
                for partition, (low, high) in marks.items()
            }
            lagging = [row for row in rows.values() if row["lag"]]
            oldest = _oldest_uncounted(self._reader, topic, lagging)
            if lagging:
                self._reader.unassign()  # or it keeps fetching between calls
        now_ms = (now or datetime.now(UTC)).timestamp() * 1000
        for partition, stamp_ms in oldest.items():
            rows[partition]["lag_seconds"] = max(0.0, (now_ms - stamp_ms) / 1000)
        frame = pl.DataFrame(
            list(rows.values()),
            schema={
                "partition": pl.Int64,
                "end_offset": pl.Int64,
                "lag": pl.Int64,
                "next": pl.Int64,
                "lag_seconds": pl.Float64,
            },
        )
        return PipelineLag(frame.drop("next"))

    def close(self) -> None:
        with self._lock:
            if self._opened is not None:
                self._opened.close()
                self._opened = None


def _oldest_uncounted(
    reader: Consumer, topic: str, lagging: list[dict[str, Any]], timeout: float = 3.0
) -> dict[int, int]:
    """Kafka timestamp (ms) of the first uncounted record of each lagging partition."""
    if not lagging:
        return {}
    reader.assign([TopicPartition(topic, row["partition"], row["next"]) for row in lagging])
    wanted = {row["partition"] for row in lagging}
    found: dict[int, int] = {}
    deadline = time.monotonic() + timeout
    while wanted - set(found) and time.monotonic() < deadline:
        for message in reader.consume(num_messages=len(wanted), timeout=0.5):
            partition = message.partition()
            if message.error() is None and partition is not None and partition not in found:
                found[partition] = message.timestamp()[1]
    return found
