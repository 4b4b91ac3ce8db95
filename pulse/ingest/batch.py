"""A micro-batch: raw Kafka records and the offset ranges that identify it (pure data)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import polars as pl

RECORD_SCHEMA = pl.Schema(
    {
        "partition": pl.Int32(),
        "offset": pl.Int64(),
        "kafka_ts": pl.Int64(),
        "key": pl.Binary(),
        "value": pl.Binary(),
    }
)


@dataclass(frozen=True)
class OffsetRange:
    """Offsets `first`..`last` (inclusive) of one partition."""

    partition: int
    first: int
    last: int

    def __str__(self) -> str:
        return f"p{self.partition}:{self.first}-{self.last}"


@dataclass(frozen=True)
class MicroBatch:
    """Raw records drained from Kafka, in consumption order.

    Its identity is its offset ranges: a batch that is replayed after a crash is re-read over
    exactly the same ranges, so it validates and aggregates to exactly the same result.
    """

    topic: str
    records: pl.DataFrame
    """Columns of RECORD_SCHEMA: partition, offset, kafka_ts (ms), key, value."""

    @classmethod
    def from_columns(
        cls,
        topic: str,
        partitions: Sequence[int],
        offsets: Sequence[int],
        timestamps: Sequence[int],
        keys: Sequence[bytes | None],
        values: Sequence[bytes | None],
    ) -> Self:
        frame = pl.DataFrame(
            {
                "partition": partitions,
                "offset": offsets,
                "kafka_ts": timestamps,
                "key": keys,
                "value": values,
            },
            schema=RECORD_SCHEMA,
        )
        # Consumption interleaves partitions differently on every read; sorting makes a
        # replayed batch identical record for record (duplicates resolve the same way).
        return cls(topic, frame.sort("partition", "offset"))

    @property
    def size(self) -> int:
        return self.records.height

    def without(self, partitions: set[int]) -> MicroBatch:
        """The batch less the records of `partitions`."""
        kept = self.records.filter(~pl.col("partition").is_in(sorted(partitions)))
        return MicroBatch(self.topic, kept)

    def ranges(self) -> list[OffsetRange]:
        """First and last offset per partition, by partition."""
        bounds = (
            self.records.group_by("partition")
            .agg(pl.col("offset").min().alias("first"), pl.col("offset").max().alias("last"))
            .sort("partition")
        )
        return [OffsetRange(p, first, last) for p, first, last in bounds.iter_rows()]

    @property
    def batch_id(self) -> str:
        """Deterministic id from topic and ranges, e.g. 'interactions/p0:100-199,p3:40-80'."""
        return batch_id(self.topic, self.ranges())


def _ranges_text(ranges: Sequence[OffsetRange]) -> str:
    return ",".join(str(r) for r in sorted(ranges, key=lambda r: r.partition))


def batch_id(topic: str, ranges: Sequence[OffsetRange]) -> str:
    return f"{topic}/{_ranges_text(ranges)}"


def entity_flush_id(topic: str, ranges: Sequence[OffsetRange]) -> str:
    """Ledger id of an entity flush, e.g. 'interactions/entities/p0:100-899,p3:40-380'."""
    return f"{topic}/entities/{_ranges_text(ranges)}"


def sequenced_id(topic: str, kind: str, sequence: int) -> str:
    """Ledger id of a batch not read from Kafka but numbered in a sequence of its kind, e.g.
    'interactions/dlq-replay:3'."""
    return f"{topic}/{kind}:{sequence}"


def without_topic(batch_or_flush_id: str) -> str:
    """The id less its topic ('p0:100-199,p3:40-80', 'entities/p0:100-899'): how a batch is named
    where its topic is already said (task runs, tables)."""
    return batch_or_flush_id.split("/", 1)[1]


def ranges_of(batch_or_flush_id: str) -> list[OffsetRange]:
    """The offset ranges an id above names (Kafka topic names hold no '/')."""
    text = batch_or_flush_id.rsplit("/", 1)[1]
    ranges = []
    for part in text.split(","):
        partition, span = part.removeprefix("p").split(":")
        first, last = span.split("-")
        ranges.append(OffsetRange(int(partition), int(first), int(last)))
    return ranges
