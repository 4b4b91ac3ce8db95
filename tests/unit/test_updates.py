"""Update statements: every aggregate upsert carries the batch's watermark guard."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from pulse.ingest.aggregate import Aggregates, aggregate
from pulse.ingest.batch import OffsetRange
from pulse.ingest.validate import DEAD_SCHEMA
from pulse.store.schema import ENTITY_MARKS, user_bucket
from pulse.store.statements import (
    Guard,
    activity_bin,
    dead_letter_statements,
    entity_totals_update,
    entity_updates,
    item_minute_updates,
    minute_sketch_updates,
    minute_updates,
    totals_update,
    user_bin_changes,
    user_bucket_updates,
)

TYPES = ("view", "click")
T0 = 1_795_737_600_000
GUARD = Guard((OffsetRange(3, 100, 180), OffsetRange(1, 40, 90)))


def _aggregates() -> Aggregates:
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3"],
            "user_id": ["u1", "u1", "u2"],
            "item_id": ["i1", "i2", "i1"],
            "interaction_type": ["view", "view", "click"],
            "timestamp": [T0, T0 + 61_000, T0 + 1_000],
        }
    )
    return aggregate(events, TYPES)


def test_guard_checks_the_lowest_partition_and_marks_all() -> None:
    assert GUARD.filter == {"wm.p1": {"$not": {"$gte": 90}}}
    assert GUARD.marks == {"wm.p3": 180, "wm.p1": 90}


def test_user_statements_are_guarded_upserts_with_counts_and_times() -> None:
    aggregates = _aggregates()
    statements = entity_updates(aggregates.users, "user_id", GUARD, "batch-1", TYPES)
    assert [s["q"]["_id"] for s in statements] == ["u1", "u2"]
    first = statements[0]
    assert first["upsert"] is True
    assert first["q"]["wm.p1"] == {"$not": {"$gte": 90}}
    assert first["u"]["$inc"] == {"total": 2, "types.view": 2}  # zero counts are left out
    assert first["u"]["$min"] == {"first_seen": datetime.fromtimestamp(T0 / 1000, UTC)}
    assert first["u"]["$max"]["wm.p3"] == 180
    assert first["u"]["$setOnInsert"] == {"first_batch": "batch-1"}


def test_minute_statements_carry_sketches_and_item_minutes_their_keys() -> None:
    aggregates = _aggregates()
    minutes = minute_updates(aggregates, GUARD, TYPES)
    assert [s["q"]["_id"] for s in minutes] == ["2026-11-27T00:00Z", "2026-11-27T00:01Z"]
    assert not any(key.startswith("users_hll.") for key in minutes[0]["u"]["$max"])
    sketches = minute_sketch_updates(aggregates, GUARD)
    assert [s["q"]["_id"] for s in sketches] == ["2026-11-27T00:00Z", "2026-11-27T00:01Z"]
    assert any(key.startswith("users_hll.r") for key in sketches[0]["u"]["$max"])
    assert sketches[0]["u"]["$max"]["wm.p3"] == minutes[0]["u"]["$max"]["wm.p3"]
    item_minutes = item_minute_updates(aggregates, GUARD, TYPES)
    assert [s["q"]["_id"] for s in item_minutes] == [
        "i1|2026-11-27T00:00Z",
        "i2|2026-11-27T00:01Z",
    ]
    assert item_minutes[0]["u"]["$inc"] == {"total": 2, "types.view": 1, "types.click": 1}


def test_totals_statement_adds_events_and_dead_letters() -> None:
    now = datetime(2026, 11, 27, tzinfo=UTC)
    statement = totals_update(_aggregates(), GUARD, TYPES, dead_lettered=4, applied_at=now)
    assert statement["q"]["_id"] == "global"
    assert statement["u"]["$inc"] == {
        "events": 3,
        "types.view": 2,
        "types.click": 1,
        "dead_lettered": 4,
    }
    assert statement["u"]["$max"]["last_event"] == datetime.fromtimestamp((T0 + 61_000) / 1000, UTC)


def test_entity_totals_statement_adds_new_users_under_the_entity_watermarks() -> None:
    guard = Guard(GUARD.ranges, ENTITY_MARKS)
    statement = entity_totals_update(guard, new_users=2, new_items=1, user_bins={"user_bins.b0": 2})
    assert statement["q"] == {"_id": "global", "ws.p1": {"$not": {"$gte": 90}}}
    assert statement["u"]["$inc"] == {"users": 2, "items": 1, "user_bins.b0": 2}
    assert set(statement["u"]["$max"]) == {"ws.p1", "ws.p3"}


def test_dead_letters_are_keyed_by_topic_partition_offset() -> None:
    dead = pl.DataFrame(
        {
            "partition": [2],
            "offset": [77],
            "kafka_ts": [T0],
            "key": [b"u1"],
            "value": [b"{oops"],
            "reason": ["not valid JSON"],
            "field": [""],
        },
        schema=DEAD_SCHEMA,
    )
    now = datetime(2026, 11, 27, tzinfo=UTC)
    (statement,) = dead_letter_statements(dead, "interactions", "b1", now)
    assert statement["q"] == {"_id": "interactions:2:77"}
    doc = statement["u"]["$setOnInsert"]
    assert doc["raw"] == b"{oops" and doc["reason"] == "not valid JSON" and doc["field"] is None


def test_activity_bins_are_powers_of_two() -> None:
    assert [activity_bin(n) for n in (1, 2, 3, 4, 7, 8, 1_000)] == [
        "b0",
        "b1",
        "b1",
        "b2",
        "b2",
        "b3",
        "b9",
    ]


def test_user_bin_changes_move_users_across_bins() -> None:
    users = pl.DataFrame({"user_id": ["new", "stays", "moves"], "total": [3, 1, 2]})
    before = {"stays": 4, "moves": 7}
    # new: - -> b1 (3); stays: 4 -> 5 (b2 -> b2); moves: 7 -> 9 (b2 -> b3)
    assert user_bin_changes(before, users) == {
        "user_bins.b1": 1,
        "user_bins.b2": -1,
        "user_bins.b3": 1,
    }


def test_users_are_written_one_statement_per_bucket() -> None:
    users = _aggregates().users
    statements = user_bucket_updates(users, 1, Guard(GUARD.ranges, ENTITY_MARKS), TYPES)
    (only,) = statements  # one bucket holds everyone
    assert only["q"] == {"_id": "b0", "ws.p1": {"$not": {"$gte": 90}}}
    counts = {key: n for key, n in only["u"]["$inc"].items() if key.endswith(".total")}
    assert counts == {
        f"u.{user}.total": total for user, total in users.select("user_id", "total").iter_rows()
    }
    assert {"ws.p1", "ws.p3"} <= set(only["u"]["$max"])
    spread = user_bucket_updates(users, 4096, GUARD, TYPES)
    assert sorted(s["q"]["_id"] for s in spread) == sorted(
        {user_bucket(user, 4096) for user in users["user_id"]}
    )
