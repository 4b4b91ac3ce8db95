"""Items in buckets on FerretDB/MongoDB: flushes of different partitions writing the same
buckets at once count every new item once and every event once."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from datetime import UTC, datetime

import polars as pl
import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from pulse.config import Settings
from pulse.ingest.batch import OffsetRange
from pulse.store import reads
from pulse.store.client import Document
from pulse.store.item_buckets import ItemsWritten, write_items
from pulse.store.leaders import LOW_CAP
from pulse.store.schema import ENTITY_MARKS, LEADERS, Entity
from pulse.store.statements import Guard, Statement
from pulse.store.writes import UpsertResult, settle_item_buckets, update_leaders, upsert_guarded

pytestmark = pytest.mark.integration

TYPES = ("view",)
BUCKETS = 4
FLUSHES = 6
"""Flushes per partition."""
SEEN = datetime(2026, 12, 4, tzinfo=UTC)


def _items(counts: Counter[str]) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "item_id": list(counts),
            "total": list(counts.values()),
            "types.view": list(counts.values()),
            "first_seen": [SEEN] * len(counts),
            "last_seen": [SEEN] * len(counts),
        }
    )


def test_concurrent_flushes_of_four_partitions_count_new_items_exactly(
    mongo_db: Database[Document],
) -> None:
    rng = random.Random(24)
    catalogue = [f"i{n}" for n in range(30)]  # 30 items in 4 buckets: every flush contends
    plans = {
        partition: [Counter(rng.choices(catalogue, k=12)) for _ in range(FLUSHES)]
        for partition in range(4)
    }
    written: dict[int, list[ItemsWritten]] = {partition: [] for partition in plans}
    start = threading.Barrier(len(plans))

    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        return upsert_guarded(
            mongo_db, collection, statements, max_count=2
        )  # more room to interleave

    failures: list[BaseException] = []

    def flushes(partition: int) -> None:
        start.wait()
        try:
            _flush_all(partition)
        except BaseException as exc:  # seen by the test, not lost in the thread
            failures.append(exc)

    def _flush_all(partition: int) -> None:
        for n, counts in enumerate(plans[partition]):
            guard = Guard((OffsetRange(partition, n * 100, n * 100 + 99),), ENTITY_MARKS, "t")
            flush_id = f"t/entities/p{partition}:{n * 100}-{n * 100 + 99}"
            result = write_items(mongo_db, _items(counts), BUCKETS, guard, TYPES, flush_id, writer)
            written[partition].append(result)

    threads = [threading.Thread(target=flushes, args=(p,)) for p in plans]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a flush did not finish within 120 s"

    assert not failures, failures
    truth: Counter[str] = Counter()
    for counts in (c for flushed in plans.values() for c in flushed):
        truth.update(counts)
    assert len(written[0]) == FLUSHES, written
    assert reads.item_totals(mongo_db) == dict(truth)
    assert sum(r.new_items for results in written.values() for r in results) == len(truth)
    # Each flush's totals are the item's totals right after its own write: they only grow.
    for results in written.values():
        for before, after in itertools.pairwise(results):
            for item in before.totals.keys() & after.totals.keys():
                assert before.totals[item] < after.totals[item]


def test_a_replayed_flush_counts_its_new_items_and_adds_nothing(
    mongo_db: Database[Document],
) -> None:
    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        return upsert_guarded(mongo_db, collection, statements)

    settle_item_buckets(mongo_db, BUCKETS)  # where readers look for an item
    guard = Guard((OffsetRange(0, 0, 9),), ENTITY_MARKS, "t")
    older = Guard((OffsetRange(1, 0, 9),), ENTITY_MARKS, "t")
    write_items(mongo_db, _items(Counter(i2=1)), BUCKETS, older, TYPES, "t/entities/p1:0-9", writer)
    items = _items(Counter(i1=2, i2=3, i3=1))
    once = write_items(mongo_db, items, BUCKETS, guard, TYPES, "t/entities/p0:0-9", writer)
    again = write_items(mongo_db, items, BUCKETS, guard, TYPES, "t/entities/p0:0-9", writer)
    assert once.new_items == again.new_items == 2
    assert reads.item_totals(mongo_db) == {"i1": 2, "i2": 4, "i3": 1} == again.totals
    assert again.result.upserted + again.result.modified == 0
    (item,) = reads.items_by_ids(mongo_db, ["i2"])
    assert {k: item[k] for k in ("_id", "total", "types")} == {
        "_id": "i2",
        "total": 4,
        "types": {"view": 4},
    }
    assert "first_batch" not in item  # the bucket's bookkeeping stays in the bucket


class _Finds(CommandListener):
    """Counts `find` commands per collection."""

    def __init__(self) -> None:
        self.finds: Counter[str] = Counter()

    def started(self, event: CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds[event.command["find"]] += 1

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


def test_the_least_active_items_come_from_the_low_lists_and_else_from_every_item(
    mongo_db: Database[Document], live_stack: Settings
) -> None:
    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        return upsert_guarded(mongo_db, collection, statements)

    settle_item_buckets(mongo_db, BUCKETS)
    counts = Counter(i1=1, i2=2, i3=2, i4=LOW_CAP + 2, i5=LOW_CAP + 6)
    guard = Guard((OffsetRange(0, 0, 9),), ENTITY_MARKS, "t")
    written = write_items(mongo_db, _items(counts), BUCKETS, guard, TYPES, "t/e/p0:0-9", writer)
    update_leaders(mongo_db, Entity.ITEMS, written.totals, dict(counts))
    listener = _Finds()
    uri = live_stack.mongo.uri.get_secret_value()
    client: MongoClient[Document] = MongoClient(uri, tz_aware=True, event_listeners=[listener])
    with client:
        db = client[mongo_db.name]
        fewest = reads.ranked(db, Entity.ITEMS, "item_id", 3, lowest=True)
        assert fewest.select("item_id", "total").rows() == [("i1", 1), ("i2", 2), ("i3", 2)]
        # The lists of each total in one read, not one list at a time (LOW_CAP x 32 of them),
        # and only the totals needed: 1, then 2.
        assert listener.finds[LEADERS] == 2
        # More than the lists hold: every item, ranked.
        every = reads.ranked(db, Entity.ITEMS, "item_id", 5, lowest=True)
        assert every["total"].to_list() == sorted(counts.values())
        assert set(every["item_id"]) == set(counts)
