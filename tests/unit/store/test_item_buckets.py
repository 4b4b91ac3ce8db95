"""Items in buckets: new items counted exactly however flushes of other partitions interleave."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import polars as pl
import pytest
from pymongo.errors import OperationFailure

from pulse.ingest.batch import OffsetRange
from pulse.pipeline.failures import is_transient
from pulse.store import contended as contended_writes
from pulse.store import reads, writes
from pulse.store.contended import WRITE_CONFLICT, WRITE_ROUNDS
from pulse.store.item_buckets import (
    ItemsWritten,
    plan,
    write_items,
)
from pulse.store.leaders import LOW_CAP, low_doc_id
from pulse.store.migrations import UnfinishedFlushError, move_legacy_items
from pulse.store.schema import (
    LEADERS,
    LEGACY_ITEMS,
    Entity,
    item_entity_bucket,
)
from pulse.store.statements import Statement
from pulse.store.writes import ENTITY_FLUSH, UpsertResult, ledger_begin, upsert_guarded
from tests.fakes import MemoryDatabase
from tests.flushes import as_database, entity_frame, flush_guard, plain_writer

TYPES = ("view", "click")
BUCKETS = 4
SEEN = datetime(2026, 12, 4, tzinfo=UTC)


def _items(totals: dict[str, int]) -> pl.DataFrame:
    return entity_frame("item_id", totals, SEEN)


def test_a_bucket_not_written_yet_is_created_with_every_item_new() -> None:
    guard = flush_guard(0, 0, 9)
    rows = _items({"i1": 2, "i2": 1}).to_dicts()
    written = plan("b1", rows, None, guard, TYPES, "flush-1")
    assert written.statement["q"] == {"_id": "b1", "v": {"$exists": False}, **guard.filter}
    update = written.statement["u"]
    assert update["$inc"] == {
        "v": 1,
        "i.i1.total": 2,
        "i.i1.types.view": 2,
        "i.i2.total": 1,
        "i.i2.types.view": 1,
    }
    assert update["$inc"].keys().isdisjoint({"i.i1.types.click"})  # zero counts left out
    assert update["$set"] == {"i.i1.first_batch": "flush-1", "i.i2.first_batch": "flush-1"}
    assert update["$max"]["ws.t.p0"] == 9
    assert (written.new, written.totals) == (2, {"i1": 2, "i2": 1})


def test_a_stored_bucket_is_written_at_the_version_read_and_only_absent_items_are_new() -> None:
    stored = {"_id": "b1", "v": 7, "i": {"i1": {"total": 5, "first_batch": "older"}}}
    rows = _items({"i1": 2, "i2": 1}).to_dicts()
    written = plan("b1", rows, stored, flush_guard(0, 0, 9), TYPES, "flush-1")
    assert written.statement["q"]["v"] == 7
    assert written.statement["u"]["$set"] == {"i.i2.first_batch": "flush-1"}
    assert (written.new, written.totals) == (1, {"i1": 7, "i2": 1})


def test_flushes_of_two_partitions_interleaving_on_one_bucket_count_each_item_once() -> None:
    db = as_database(MemoryDatabase())
    shared = [f"i{n}" for n in range(40) if item_entity_bucket(f"i{n}", BUCKETS) == "b0"][:3]
    interleaved: list[ItemsWritten] = []

    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        if not interleaved:  # the other flush writes between this one's read and its write
            other = _items(dict.fromkeys(shared[:2], 1))
            interleaved.append(
                write_items(db, other, BUCKETS, flush_guard(1, 0, 4), TYPES, "B", plain_writer(db))
            )
        return upsert_guarded(db, collection, statements)

    mine = write_items(
        db, _items(dict.fromkeys(shared, 2)), BUCKETS, flush_guard(0, 0, 9), TYPES, "A", writer
    )
    (other,) = interleaved
    assert other.new_items == 2
    assert mine.new_items == 1  # its first write was refused; the re-read held two of three
    expected = {shared[0]: 3, shared[1]: 3, shared[2]: 2}
    assert mine.totals == expected == reads.item_totals(db)


def test_a_replayed_flush_counts_what_it_created_and_adds_nothing() -> None:
    db = as_database(MemoryDatabase())
    write_items(
        db, _items({"i3": 1}), BUCKETS, flush_guard(1, 0, 0), TYPES, "old", plain_writer(db)
    )
    guard, items = flush_guard(0, 0, 9), _items({"i1": 2, "i2": 1, "i3": 4})
    once = write_items(db, items, BUCKETS, guard, TYPES, "flush-1", plain_writer(db))
    again = write_items(db, items, BUCKETS, guard, TYPES, "flush-1", plain_writer(db))
    assert once.new_items == again.new_items == 2
    assert once.totals == again.totals == reads.item_totals(db) == {"i1": 2, "i2": 1, "i3": 5}
    assert again.result.upserted + again.result.modified == 0


def test_a_bucket_changed_at_every_write_gives_up_with_a_transient_conflict(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(contended_writes, "BACKOFF_SECONDS", 0.0)
    db = as_database(MemoryDatabase())
    calls: list[int] = []

    def contended(collection: str, statements: list[Statement]) -> UpsertResult:
        # Another flush writes the bucket each time, right before this one.
        calls.append(len(calls))
        other = flush_guard(1, len(calls) * 10, len(calls) * 10 + 5)
        write_items(db, _items({"i1": 1}), BUCKETS, other, TYPES, "B", plain_writer(db))
        return upsert_guarded(db, collection, statements)

    with pytest.raises(OperationFailure) as raised:
        write_items(db, _items({"i1": 1}), BUCKETS, flush_guard(0, 0, 9), TYPES, "A", contended)
    assert raised.value.code == WRITE_CONFLICT and is_transient(raised.value)
    assert len(calls) == 1 + WRITE_ROUNDS  # all buckets once, then the contended one


def test_legacy_items_move_into_buckets_once() -> None:
    memory = MemoryDatabase()
    db = as_database(memory)
    memory[LEGACY_ITEMS].insert_one({"_id": "i1", "total": 3, "first_batch": "x", "ws": {}})
    memory[LEGACY_ITEMS].insert_one({"_id": "i2", "total": 1})
    assert move_legacy_items(db, BUCKETS) == 2
    assert move_legacy_items(db, BUCKETS) == 0  # a second consumer, or a restart
    assert reads.item_totals(db) == {"i1": 3, "i2": 1}
    assert LEGACY_ITEMS not in memory.list_collection_names()


def test_legacy_items_stay_while_an_entity_flush_is_unfinished() -> None:
    memory = MemoryDatabase()
    memory[LEGACY_ITEMS].insert_one({"_id": "i1", "total": 3})
    flush = "t/entities/p0:0-9"  # begun as a flush is, and never finished
    ledger_begin(
        as_database(memory), flush, "t", [OffsetRange(0, 0, 9)], 10, {"kind": ENTITY_FLUSH}
    )
    with pytest.raises(UnfinishedFlushError, match="1 unfinished entity flush"):
        move_legacy_items(as_database(memory), BUCKETS)
    assert memory[LEGACY_ITEMS].find_one({"_id": "i1"}) is not None


def test_the_fewest_items_are_the_lowest_totals_in_id_order_once_many_outgrew_the_lists() -> None:
    db = as_database(MemoryDatabase())
    writes.settle_item_buckets(db, BUCKETS)
    rng = random.Random(5)
    for flush in range(8):
        counts = {f"i{rng.randrange(400)}": rng.choice([1, 1, 1, 2, 5]) for _ in range(150)}
        guard = flush_guard(0, flush * 10, flush * 10 + 9)
        written = write_items(
            db, _items(counts), BUCKETS, guard, TYPES, f"f{flush}", plain_writer(db)
        )
        writes.update_leaders(db, Entity.ITEMS, written.totals, counts)
    totals = reads.item_totals(db)
    # Lists another flush has not yet unlisted its items from (a race): skipped.
    for item in [item for item, total in sorted(totals.items()) if total > LOW_CAP][:30]:
        doc_id = low_doc_id(Entity.ITEMS, 1, item)
        db[LEADERS].update_one({"_id": doc_id}, {"$set": {f"ids.{item}": 1}}, upsert=True)
    for n in (1, 10, 45):
        fewest = reads.ranked(db, Entity.ITEMS, "item_id", n, lowest=True)
        expected = sorted(totals, key=lambda item: (totals[item], item))[:n]
        assert fewest["item_id"].to_list() == expected
