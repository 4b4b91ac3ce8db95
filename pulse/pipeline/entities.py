"""The entity tier's memory: applied micro-batches waiting for their entity flush (pure).

A micro-batch's counts are written at once; its valid events wait here until the next flush
writes the per-user, per-item and item x minute documents of all waiting batches together
(docs/consumer.md, "Two tiers"). A busy user is then written once per flush instead of once
per batch. Nothing here is the source of truth: after a crash the waiting batches are listed
in MongoDB (`offsets.entity_batches`) and re-read from Kafka (pulse/pipeline/consumer.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace

import polars as pl

from pulse.ingest.batch import OffsetRange, ranges_of


@dataclass(frozen=True)
class Flush:
    """One entity flush: the batches it writes, the offset ranges they cover, their events."""

    ranges: list[OffsetRange]
    batches: list[str]
    events: pl.DataFrame
    replay: bool = False
    """Its ledger entry may exist already: re-read from Kafka (for partitions this member was
    just given, or an unfinished entry), a part of a split flush, or a dead-letter replay's."""
    marks_by_topic: bool = True
    """False for a replay of a ledger entry written before watermarks named their topic."""
    sequenced: bool = False
    """Its ranges are a dead-letter replay's sequence number, not Kafka offsets: no offsets
    are written for it (pulse/pipeline/target.py:Target.entities)."""

    def without(self, partitions: set[int]) -> Flush | None:
        """This flush with `partitions` left out (handed to another member, whose own re-read
        writes them), or None if nothing else is left in it."""
        kept = _kept(self.ranges, self.batches, partitions)
        if kept is None:
            return None
        ranges, batches = kept
        return replace(self, ranges=ranges, batches=batches, events=within(self.events, ranges))


ReadBacklog = Callable[[list[OffsetRange], list[str]], Flush]
"""Reads batches back from Kafka as the flush of the given ranges (pulse/pipeline/consumer.py)."""


@dataclass(frozen=True)
class Reread:
    """A flush whose events are still in Kafka: what a new owner owes of its partitions, read
    when the flush is written, not while the partitions wait to be assigned."""

    ranges: list[OffsetRange]
    batches: list[str]
    read: ReadBacklog

    def without(self, partitions: set[int]) -> Reread | None:
        """As Flush.without: the partitions given up are left to their next owner."""
        kept = _kept(self.ranges, self.batches, partitions)
        return None if kept is None else replace(self, ranges=kept[0], batches=kept[1])

    def load(self) -> Flush:
        return self.read(self.ranges, self.batches)


Pending = Flush | Reread
"""What waits to be written as one entity flush."""


def _kept(
    ranges: list[OffsetRange], batches: list[str], partitions: set[int]
) -> tuple[list[OffsetRange], list[str]] | None:
    """The ranges and batches left once `partitions` are given up; None if nothing is."""
    kept_ranges = [r for r in ranges if r.partition not in partitions]
    if not kept_ranges:
        return None
    kept = {r.partition for r in kept_ranges}
    return kept_ranges, [b for b in batches if kept & {r.partition for r in ranges_of(b)}]


def covering(ranges: Iterable[OffsetRange]) -> list[OffsetRange]:
    """Per partition, one range from the lowest first to the highest last offset."""
    bounds: dict[int, tuple[int, int]] = {}
    for r in ranges:
        first, last = bounds.get(r.partition, (r.first, r.last))
        bounds[r.partition] = (min(first, r.first), max(last, r.last))
    return [OffsetRange(p, first, last) for p, (first, last) in sorted(bounds.items())]


def within(events: pl.DataFrame, ranges: Iterable[OffsetRange]) -> pl.DataFrame:
    """The events whose (partition, offset) lies in one of `ranges`."""
    inside = pl.lit(False)
    for r in ranges:
        inside |= (pl.col("partition") == r.partition) & pl.col("offset").is_between(
            r.first, r.last
        )
    return events.filter(inside)


def backlog(progress: Mapping[int, tuple[int, list[str]]]) -> tuple[list[OffsetRange], list[str]]:
    """What an entity flush still owes, from each partition's (next offset no flush holds,
    batches listed as waiting): the ranges to flush and the batches to re-read for them."""
    owed: list[OffsetRange] = []
    batches: dict[str, None] = {}
    for partition, (entities_next, listed) in sorted(progress.items()):
        for batch_id in dict.fromkeys(listed):
            mine = [r for r in ranges_of(batch_id) if r.partition == partition]
            if mine and mine[0].last >= entities_next:
                owed += mine
                batches[batch_id] = None
    return covering(owed), list(batches)


BUFFER_FLUSHES = 2
"""Events waiting for an entity flush are held to this many flushes' worth
(PULSE_CONSUMER_ENTITY_FLUSH_EVENTS each): past it, the consumer waits for the flush being
written before it reads on."""


@dataclass
class EntityBuffer:
    """Applied batches not flushed yet; due after `seconds` or `max_events` events."""

    seconds: float
    max_events: int
    clock: Callable[[], float] = time.monotonic
    _batches: dict[str, tuple[list[OffsetRange], pl.DataFrame]] = field(default_factory=dict)
    _since: float = 0.0

    def add(self, batch_id: str, ranges: list[OffsetRange], events: pl.DataFrame) -> None:
        """Keep a batch's valid events; adding a batch again (a task retry) keeps one copy."""
        if not self._batches:
            self._since = self.clock()
        self._batches[batch_id] = (ranges, events)

    @property
    def events(self) -> int:
        return sum(events.height for _, events in self._batches.values())

    @property
    def empty(self) -> bool:
        return not self._batches

    @property
    def full(self) -> bool:
        """Twice a flush's events wait: the bound of what one consumer holds (BUFFER_FLUSHES)."""
        return self.events >= BUFFER_FLUSHES * self.max_events

    def due(self) -> bool:
        if not self._batches:
            return False
        waited = self.clock() - self._since
        return waited >= self.seconds or self.events >= self.max_events

    def take(self) -> Flush | None:
        """The flush of everything waiting (kept until `clear`, so a failed flush is retried
        with the same batches and ranges)."""
        if not self._batches:
            return None
        frames = [events for _, events in self._batches.values()]
        return Flush(
            ranges=covering(r for ranges, _ in self._batches.values() for r in ranges),
            batches=list(self._batches),
            events=pl.concat(frames, how="vertical_relaxed") if len(frames) > 1 else frames[0],
        )

    def clear(self) -> None:
        self._batches.clear()

    def release(self, partitions: set[int]) -> None:
        """Forget what waits of `partitions` (handed to another member, which re-reads it
        from Kafka); a batch that also spans kept partitions keeps their part."""
        for batch_id, (ranges, events) in list(self._batches.items()):
            kept = [r for r in ranges if r.partition not in partitions]
            if not kept:
                del self._batches[batch_id]
            elif len(kept) < len(ranges):
                self._batches[batch_id] = (kept, within(events, kept))
