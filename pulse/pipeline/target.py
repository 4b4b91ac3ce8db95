"""Where a micro-batch's counts are written: its ledger entry, the ranges its watermarks
guard, and how (docs/consumer.md). Built only by the named constructors, so the flags of a
kind of batch stay consistent wherever it is written."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl

from pulse.ingest.batch import MicroBatch, OffsetRange, batch_id, sequenced_id
from pulse.pipeline.entities import Flush
from pulse.store.schema import MARKS_BY_TOPIC
from pulse.store.writes import DLQ_REPLAY, DLQ_REPLAY_ENTITIES, ENTITY_FLUSH

REPLAY_PARTITION = -1
"""The partition a dead-letter replay's range names: its 'offset' is the replay's sequence
number, so its watermarks never meet a Kafka partition's."""


@dataclass(frozen=True)
class Target:
    """One micro-batch's ledger entry and the mode its counts are written in."""

    batch_id: str
    ranges: tuple[OffsetRange, ...]
    marks_by_topic: bool = True
    """False for ledger entries written before watermarks named their topic: a replay guards
    with the layout its first attempt used."""
    replay: bool = False
    """The ledger entry may exist already (a replay, or a part of a split batch)."""
    check_stale: bool = False
    """Refuse the batch (StaleBatchError) if MongoDB counts past its start: a new batch read
    a while ago, when another member may have taken its partitions since."""
    record_offsets: bool = True
    """The ranges are Kafka offsets: the batch's offsets are written and it waits for an
    entity flush. False for a dead-letter replay, numbered by a sequence."""
    store_dead_letters: bool = True
    """False where the records are dead letters already (a dead-letter replay)."""
    refused: str | None = None
    """Every record becomes a dead letter with this reason (pulse/pipeline/isolation.py)."""
    ledger_extra: Mapping[str, Any] = field(default_factory=dict)
    """Also stored in the ledger entry, for whoever replays or inspects it."""

    @classmethod
    def polled(cls, batch: MicroBatch, *, fresh: bool) -> Target:
        """A batch just drained from Kafka; `fresh` if polled so recently that no other member
        can have counted past its start (pulse/pipeline/consumer.py), which spares a read."""
        ranges = batch.ranges()
        return cls(batch_id(batch.topic, ranges), tuple(ranges), check_stale=not fresh)

    @classmethod
    def again(cls, batch: MicroBatch, *, marks_by_topic: bool = True) -> Target:
        """A batch whose ledger entry exists: an unfinished one replayed, or a split's part."""
        ranges = batch.ranges()
        return cls(
            batch_id(batch.topic, ranges),
            tuple(ranges),
            marks_by_topic=marks_by_topic,
            replay=True,
        )

    @classmethod
    def dead_letter_replay(
        cls, topic: str, sequence: int, ids: list[str], *, marks_by_topic: bool = True
    ) -> Target:
        """Dead letters replayed as one batch, the `sequence`-th replay of the topic."""
        return cls(
            sequenced_id(topic, DLQ_REPLAY, sequence),
            (OffsetRange(REPLAY_PARTITION, sequence, sequence),),
            marks_by_topic=marks_by_topic,
            replay=True,
            record_offsets=False,
            store_dead_letters=False,
            ledger_extra={"kind": DLQ_REPLAY, "dead_letter_ids": ids},
        )

    def entities(self, events: pl.DataFrame) -> Flush:
        """The entity flush of this batch alone, its valid `events` written at once (a
        dead-letter replay is one small batch, and nothing re-reads it later)."""
        return Flush(
            ranges=list(self.ranges),
            batches=[self.batch_id],
            events=events,
            replay=self.replay,
            marks_by_topic=self.marks_by_topic,
            sequenced=not self.record_offsets,
        )

    def refusing(self, reason: str) -> Target:
        """The same batch (one record), written as a dead letter with `reason`."""
        return replace(self, replay=True, check_stale=False, refused=reason)

    def ledger_fields(self) -> dict[str, Any]:
        """What the ledger entry records beside the ranges, for replays and inspection."""
        refused = {"refused": self.refused} if self.refused else {}
        return marks_layout(self.marks_by_topic) | refused | dict(self.ledger_extra)


def flush_fields(flush: Flush) -> dict[str, Any]:
    """What an entity flush's ledger entry records beside its ranges: its kind, its batches
    and its watermarks' layout, for its replays."""
    kind = DLQ_REPLAY_ENTITIES if flush.sequenced else ENTITY_FLUSH
    return {"kind": kind, "batches": flush.batches} | marks_layout(flush.marks_by_topic)


def marks_layout(by_topic: bool) -> dict[str, Any]:
    """What a ledger entry records of its watermarks' layout, for its replays."""
    return {"marks": MARKS_BY_TOPIC} if by_topic else {}


def marks_by_topic(entry: Mapping[str, Any]) -> bool:
    """Whether a ledger entry was written with watermarks that name the topic."""
    return entry.get("marks") == MARKS_BY_TOPIC
