"""Dead letters picked for a replay, and what a replay makes of them (pulse/pipeline/
dead_letter_replay.py decides; this module holds the queries and updates)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database

from pulse.store.client import Document
from pulse.store.schema import DEAD_LETTERS, LEDGER, record_id
from pulse.store.writes import DLQ_REPLAY


def still_dead(
    db: Database[Document],
    topic: str,
    *,
    reason_contains: str | None = None,
    field_name: str | None = None,
    ids: list[str] | None = None,
    limit: int = 1_000,
) -> list[Document]:
    """Dead letters of `topic` still dead and kept whole, filtered by reason text, field or
    ids, oldest first."""
    # A truncated record is only the start of one: replaying it would judge something else.
    query: dict[str, Any] = {"topic": topic, "status": "dead", "truncated": {"$ne": True}}
    if ids:
        query["_id"] = {"$in": ids}
    if field_name:
        query["field"] = field_name
    if reason_contains:
        query["reason"] = {"$regex": re.escape(reason_contains)}
    return list(db[DEAD_LETTERS].find(query).sort("_id", 1).limit(limit))


def by_ids(db: Database[Document], ids: list[str]) -> dict[str, Document]:
    """The dead letters with these ids, by id."""
    return {doc["_id"]: doc for doc in db[DEAD_LETTERS].find({"_id": {"$in": ids}})}


def unmarked_replays(db: Database[Document], topic: str) -> list[Document]:
    """Ledger entries of replays whose dead letters were not marked yet (interrupted), oldest
    first."""
    query = {"topic": topic, "kind": DLQ_REPLAY, "dead_letters_marked": {"$ne": True}}
    return list(db[LEDGER].find(query).sort("started_at", 1))


def mark_replayed(
    db: Database[Document],
    topic: str,
    batch_id: str,
    revived: Iterable[tuple[int, int]],
    still_failing: Iterable[dict[str, Any]],
) -> None:
    """Revived records (partition, offset) become 'replayed'; the rest stay dead with their new
    reason and field; then the replay's ledger entry says its dead letters are marked."""
    now = datetime.now(UTC)
    revived_ids = [record_id(topic, partition, offset) for partition, offset in revived]
    if revived_ids:
        db[DEAD_LETTERS].update_many(
            {"_id": {"$in": revived_ids}},
            {"$set": {"status": "replayed", "replayed_in": batch_id, "replayed_at": now}},
        )
    for row in still_failing:
        db[DEAD_LETTERS].update_one(
            {"_id": record_id(topic, row["partition"], row["offset"])},
            {
                "$set": {
                    "reason": row["reason"],
                    "field": row["field"] or None,
                    "last_replay": batch_id,
                }
            },
        )
    db[LEDGER].update_one({"_id": batch_id}, {"$set": {"dead_letters_marked": True}})
