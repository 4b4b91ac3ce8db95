"""Round-trip and upsert documents through the real MongoDB-compatible server."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database
from pymongo.errors import OperationFailure

from pulse.config import Settings
from pulse.store.client import Document, mongo_client

pytestmark = pytest.mark.integration


def test_documents_round_trip_with_timezone_aware_times(mongo_db: Database[Document]) -> None:
    when = datetime(2026, 11, 27, 12, 30, 15, 123_000, tzinfo=UTC)
    mongo_db.items.insert_one({"_id": "item-1", "name": "lamp", "seen": when, "tags": ["a", "b"]})
    found = mongo_db.items.find_one({"_id": "item-1"})
    assert found == {"_id": "item-1", "name": "lamp", "seen": when, "tags": ["a", "b"]}


def test_upserts_accumulate_with_inc_min_max(mongo_db: Database[Document]) -> None:
    def batch(counts: dict[str, int], seen: datetime) -> list[UpdateOne]:
        return [
            UpdateOne(
                {"_id": key},
                {
                    "$inc": {"total": count},
                    "$min": {"first_seen": seen},
                    "$max": {"last_seen": seen},
                    "$setOnInsert": {"created": seen},
                },
                upsert=True,
            )
            for key, count in counts.items()
        ]

    early = datetime(2026, 1, 1, tzinfo=UTC)
    late = datetime(2026, 1, 2, tzinfo=UTC)
    first = mongo_db.users.bulk_write(batch({"u1": 3, "u2": 1}, late), ordered=False)
    second = mongo_db.users.bulk_write(batch({"u1": 2, "u3": 5}, early), ordered=False)

    assert first.upserted_count == 2
    assert second.upserted_count == 1 and second.modified_count == 1
    docs = {doc["_id"]: doc for doc in mongo_db.users.find()}
    assert {key: doc["total"] for key, doc in docs.items()} == {"u1": 5, "u2": 1, "u3": 5}
    assert docs["u1"]["first_seen"] == early and docs["u1"]["last_seen"] == late
    assert docs["u1"]["created"] == late  # $setOnInsert kept the first insert's value


def test_unique_index_and_indexed_sort(mongo_db: Database[Document]) -> None:
    mongo_db.items.create_index([("total", ASCENDING)])
    mongo_db.items.insert_many([{"_id": f"i{n}", "total": n * 7 % 11} for n in range(11)])
    top = list(mongo_db.items.find().sort("total", -1).limit(2))
    bottom = list(mongo_db.items.find().sort("total", 1).limit(1))
    assert [doc["total"] for doc in top] == [10, 9]
    assert bottom[0]["total"] == 0


def test_concurrent_increments_of_one_document_are_all_kept(
    live_stack: Settings, mongo_db: Database[Document]
) -> None:
    # Several consumers update shared documents (items, minutes) at once; FerretDB needs
    # Pulse's patch for this (docs/ferretdb.md), MongoDB guarantees it.
    def bump() -> None:
        with mongo_client(live_stack.mongo) as client:
            collection = client[mongo_db.name].counters
            for _ in range(150):
                collection.update_one({"_id": "shared"}, {"$inc": {"n": 1}}, upsert=True)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for future in [pool.submit(bump) for _ in range(4)]:
            future.result()
    assert mongo_db.counters.find_one({"_id": "shared"}) == {"_id": "shared", "n": 600}


def test_one_update_command_can_touch_thousands_of_existing_documents(
    mongo_db: Database[Document],
) -> None:
    mongo_db.users.insert_many([{"_id": f"u{n}", "total": 0} for n in range(3_000)])
    updates = [{"q": {"_id": f"u{n}"}, "u": {"$inc": {"total": 1}}} for n in range(3_000)]
    reply = mongo_db.command("update", "users", updates=updates, ordered=False)
    assert reply["nModified"] == 3_000


def test_a_guarded_upsert_on_a_document_that_has_the_batch_is_a_duplicate_key(
    mongo_db: Database[Document],
) -> None:
    guarded = {
        "q": {"_id": "i1", "wm.p0": {"$not": {"$gte": 10}}},
        "u": {"$inc": {"total": 5}, "$max": {"wm.p0": 10}},
        "upsert": True,
    }
    first = mongo_db.command("update", "items", updates=[guarded])
    assert len(first["upserted"]) == 1
    again = mongo_db.command("update", "items", updates=[guarded])
    assert [error["code"] for error in again["writeErrors"]] == [11000]
    assert mongo_db.items.find_one({"_id": "i1"}) == {"_id": "i1", "total": 5, "wm": {"p0": 10}}


def test_in_on_id_with_other_conditions_returns_exactly_the_matches(
    mongo_db: Database[Document],
) -> None:
    # Pushed down to SQLite by Pulse's FerretDB patch; the full filter must still apply.
    mongo_db.users.insert_many([{"_id": f"u{n}", "total": n} for n in range(200)])
    wanted = [f"u{n}" for n in range(0, 200, 3)] + ["nobody"]
    found = mongo_db.users.find({"_id": {"$in": wanted}, "total": {"$gte": 100}}, {"_id": 1})
    assert sorted(doc["_id"] for doc in found) == sorted(f"u{n}" for n in range(102, 200, 3))


def test_an_update_of_thousands_of_paths_applies_and_conflicts_are_still_refused(
    mongo_db: Database[Document],
) -> None:
    # FerretDB checked every pair of an update's paths; the project's patch checks them sorted
    # (a bucket document's figures are thousands of paths) and must refuse the same updates.
    users = [f"user{n}" for n in range(2_000)]
    update = {
        "$inc": {f"u.{user}.total": 2 for user in users},
        "$max": {f"u.{user}.last_seen": 7 for user in users},
    }
    mongo_db.buckets.update_one({"_id": "b0"}, update, upsert=True)
    found = mongo_db.buckets.find_one({"_id": "b0"})
    assert found is not None and found["u"]["user1999"] == {"total": 2, "last_seen": 7}

    conflicting: list[dict[str, dict[str, Any]]] = [
        {"$inc": {"u.user1.total": 1}, "$max": {"u.user1.total": 1}},  # the same path twice
        {"$inc": {"u.user1.total": 1}, "$set": {"u.user1": {}}},  # one a prefix of the other
        {"$set": {"u.a": 1, "u.a b": 2, "u.a.c": 3}},  # a prefix, not next to it by text
    ]
    for conflict in conflicting:
        with pytest.raises(OperationFailure, match="conflict"):
            mongo_db.buckets.update_one({"_id": "b0"}, conflict)
    assert mongo_db.buckets.find_one({"_id": "b0"}) == found
