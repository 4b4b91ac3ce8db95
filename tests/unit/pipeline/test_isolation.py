"""A batch whose writing fails for what one record holds: the record is refused, the rest
counts, nothing stays unfinished (pulse/pipeline/isolation.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
from confluent_kafka import Consumer
from pymongo.database import Database

from pulse.config import load_settings
from pulse.ingest.batch import MicroBatch
from pulse.ingest.validate import ValidationRules
from pulse.pipeline.apply import BatchReport, BatchWriter
from pulse.pipeline.consumer import AggregatingConsumer
from pulse.pipeline.entities import EntityBuffer
from pulse.pipeline.isolation import (
    MAX_REFUSED,
    REFUSED,
    IsolationError,
    apply_isolating,
    flush_isolating,
)
from pulse.pipeline.opening import Pipeline
from pulse.pipeline.target import Target
from pulse.store import reads, writes
from pulse.store.client import Document
from pulse.store.reads import entity_progress, stored_offsets
from pulse.store.schema import (
    COUNTERS,
    DEAD_LETTERS,
    ITEM_BUCKETS,
    LEDGER,
    MINUTES,
    REFUSED_FLUSHES,
    Entity,
    item_path,
    minute_id,
    record_id,
)
from tests.fakes import MemoryDatabase, apply_batch

TOPIC = "t"
KAFKA_TS = 1_795_737_600_000
RULES = ValidationRules(interaction_types=("view",))
POISON_MS = KAFKA_TS - 3 * 60_000  # events of this minute make the database refuse its document
POISON_MINUTE = minute_id(datetime.fromtimestamp(POISON_MS / 1000, UTC))


class RefusingDatabase(MemoryDatabase):
    """Refuses (code 2, BadValue) every statement for one minute's document."""

    def command(self, name: str, collection: str, *, updates: list[Any], ordered: bool) -> Any:
        if collection == MINUTES and any(u["q"]["_id"] == POISON_MINUTE for u in updates):
            return {"n": 0, "writeErrors": [{"index": 0, "code": 2, "errmsg": "BadValue"}]}
        return super().command(name, collection, updates=updates, ordered=ordered)


def _batch(stamps: list[int]) -> MicroBatch:
    values: list[bytes | None] = [
        orjson.dumps({"user_id": "u1", "item_id": "i1", "interaction_type": "view", "timestamp": t})
        for t in stamps
    ]
    n = len(values)
    return MicroBatch.from_columns(
        TOPIC, [0] * n, list(range(n)), [KAFKA_TS] * n, [b"k"] * n, values
    )


def _apply(pipeline: Pipeline, batch: MicroBatch, *, again: bool = False) -> list[BatchReport]:
    target = Target.again(batch) if again else Target.polled(batch, fresh=False)
    return apply_isolating(pipeline, batch, target)


def _pipeline(memory: MemoryDatabase) -> Pipeline:
    db = cast(Database[Document], memory)
    return Pipeline(load_settings(), TOPIC, db, BatchWriter(db, TOPIC, RULES))


def test_the_record_that_fails_to_write_is_refused_and_the_rest_counts() -> None:
    memory = RefusingDatabase()
    pipeline = _pipeline(memory)
    stamps = [KAFKA_TS - 1_000] * 20
    stamps[13] = POISON_MS
    reports = _apply(pipeline, _batch(stamps))

    totals = reads.totals(pipeline.db)
    assert totals is not None and totals.events == 19 and totals.dead_lettered == 1
    dead = memory[DEAD_LETTERS].find_one({"_id": record_id(TOPIC, 0, 13)})
    assert dead is not None and dead["reason"].startswith(REFUSED)
    assert "BadValue" in dead["reason"]
    assert sum(report.records for report in reports) == 20
    assert sum(report.isolated for report in reports) == 1
    assert stored_offsets(pipeline.db, TOPIC) == {0: 20}
    assert writes.unfinished_batches(pipeline.db, TOPIC) == []
    statuses = {doc["_id"]: doc["status"] for doc in memory[LEDGER].find({})}
    assert statuses[f"{TOPIC}/p0:0-19"] == "split"


def test_refusing_the_same_batch_again_adds_nothing() -> None:
    memory = RefusingDatabase()
    pipeline = _pipeline(memory)
    stamps = [KAFKA_TS - 1_000] * 8
    stamps[2] = POISON_MS
    _apply(pipeline, _batch(stamps))
    _apply(pipeline, _batch(stamps), again=True)  # a replay of the whole batch
    totals = reads.totals(pipeline.db)
    assert totals is not None and totals.events == 7 and totals.dead_lettered == 1


def test_a_failure_of_every_record_is_not_isolated_but_raised() -> None:
    pipeline = _pipeline(RefusingDatabase())
    with pytest.raises(IsolationError, match=f"more than {MAX_REFUSED} records"):
        _apply(pipeline, _batch([POISON_MS] * 40))


class RefusingItems(MemoryDatabase):
    """Refuses (code 2) every statement for item 'poison'."""

    def command(self, name: str, collection: str, *, updates: list[Any], ordered: bool) -> Any:
        poison = f"{item_path('poison')}.total"
        if collection == ITEM_BUCKETS and any(poison in u["u"].get("$inc", {}) for u in updates):
            return {"n": 0, "writeErrors": [{"index": 0, "code": 2, "errmsg": "BadValue"}]}
        return super().command(name, collection, updates=updates, ordered=ordered)


def test_an_entity_flush_failing_for_one_batch_leaves_that_batch_out_and_goes_on() -> None:
    memory = RefusingItems()
    db = cast(Database[Document], memory)
    writer = BatchWriter(db, TOPIC, RULES)
    good = _batch([KAFKA_TS - 1_000] * 5)
    poisoned = MicroBatch.from_columns(
        TOPIC,
        [0],
        [5],
        [KAFKA_TS],
        [None],
        [
            b'{"user_id":"u2","item_id":"poison","interaction_type":"view","timestamp":%d}'
            % KAFKA_TS
        ],
    )
    reports = [apply_batch(writer, good), apply_batch(writer, poisoned)]
    waiting = EntityBuffer(seconds=0, max_events=1)
    for report in reports:
        assert report.verdict is not None
        waiting.add(report.batch_id, report.ranges, report.verdict.events)
    pending = waiting.take()
    assert pending is not None
    written = flush_isolating(writer, pending)

    assert [report.records for report in written] == [5, 0]
    assert reads.entity(db, Entity.ITEMS, "item_id", "i1") is not None
    assert reads.entity(db, Entity.ITEMS, "item_id", "poison") is None
    (refused,) = memory[LEDGER].find({"status": "refused"})
    assert refused["_id"] == f"{TOPIC}/entities/p0:5-5" and "BadValue" in refused["error"]
    assert entity_progress(db, TOPIC, [0]) == {0: (6, [])}
    assert writes.unfinished_batches(db, TOPIC) == []
    counter = memory[COUNTERS].find_one({"_id": REFUSED_FLUSHES})
    assert counter is not None and counter["value"] == 1


class _Commits:
    """Stands for the Kafka consumer of a member: records what it is told to commit."""

    def __init__(self) -> None:
        self.committed: list[list[Any]] = []

    def commit(self, offsets: list[Any], asynchronous: bool) -> None:
        self.committed.append(offsets)


def test_a_member_processes_a_poisoned_batch_through_isolation() -> None:
    memory = RefusingDatabase()
    member = AggregatingConsumer(_pipeline(memory))
    kafka = _Commits()
    member._consumer = cast(Consumer, kafka)  # a member as it is once it joined the group
    stamps = [KAFKA_TS - 1_000] * 10
    stamps[4] = POISON_MS
    report = member.process(_batch(stamps))
    member.flusher.flush_all()
    member.flusher.close()

    assert (report.records, report.dead_lettered, report.isolated) == (10, 1, 1)
    assert [tp.offset for offsets in kafka.committed for tp in offsets][-1] == 10
    totals = reads.totals(member.db)
    assert totals is not None and (totals.events, totals.users) == (9, 1)


def test_a_member_drops_an_old_batch_that_others_counted_past() -> None:
    member = AggregatingConsumer(_pipeline(MemoryDatabase()))
    member._consumer = cast(Consumer, _Commits())
    member.process(_batch([KAFKA_TS - 1_000] * 10))  # p0:0-9, counted
    late = MicroBatch(TOPIC, _batch([KAFKA_TS - 1_000] * 15).records[5:])  # p0:5-14, not polled
    report = member.process(late)  # so it is checked, as a batch resumed late would be
    member.flusher.flush_all()
    member.flusher.close()
    assert report.records == 0
    totals = reads.totals(member.db)
    assert totals is not None and totals.events == 10
