"""Round-trip and upsert documents through the real MongoDB-compatible server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pymongo import ASCENDING, UpdateOne
from pymongo.database import Database

from tasks.mongo import Document

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
