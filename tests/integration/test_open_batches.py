"""Unfinished batches are found through open-batch markers, never by scanning the ledger."""

from __future__ import annotations

import pytest
from pymongo.database import Database

from pulse.ingest.batch import OffsetRange
from pulse.store import writes
from pulse.store.client import Document
from pulse.store.schema import LEDGER, OPEN_BATCHES

pytestmark = pytest.mark.integration

RANGES = [OffsetRange(0, 0, 9)]


def test_markers_follow_the_ledger_and_stale_ones_are_ignored(mongo_db: Database[Document]) -> None:
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)
    assert [e["_id"] for e in writes.unfinished_batches(mongo_db, "t", [0])] == ["t/p0:0-9"]
    writes.ledger_fail(mongo_db, "t/p0:0-9", "boom")
    assert [e["status"] for e in writes.unfinished_batches(mongo_db, "t")] == ["failed"]
    writes.ledger_begin(mongo_db, "t/p0:0-9", "t", RANGES, 10)  # the retry
    writes.ledger_finish(mongo_db, "t/p0:0-9", {})
    assert writes.unfinished_batches(mongo_db, "t") == []
    assert mongo_db[OPEN_BATCHES].count_documents({}) == 0

    # A crash between marker and entry leaves a marker alone: ignored, then removed.
    mongo_db[OPEN_BATCHES].insert_one({"_id": "t/p0:10-19", "open": True})
    assert writes.unfinished_batches(mongo_db, "t") == []
    assert mongo_db[OPEN_BATCHES].count_documents({}) == 0


def test_a_ledger_from_before_the_markers_is_backfilled_once(mongo_db: Database[Document]) -> None:
    mongo_db[LEDGER].insert_many(
        [
            {
                "_id": "t/p1:0-9",
                "topic": "t",
                "status": "writing",
                "partitions": [1],
                "ranges": [{"partition": 1, "first": 0, "last": 9}],
            },
            {
                "_id": "t/p1:10-19",
                "topic": "t",
                "status": "applied",
                "partitions": [1],
                "ranges": [{"partition": 1, "first": 10, "last": 19}],
            },
        ]
    )
    assert writes.unfinished_batches(mongo_db, "t") == []  # no marker yet
    writes.ensure_indexes(mongo_db)
    assert [e["_id"] for e in writes.unfinished_batches(mongo_db, "t", [1])] == ["t/p1:0-9"]
    assert writes.unfinished_batches(mongo_db, "t", [2]) == []  # other partitions: not theirs
