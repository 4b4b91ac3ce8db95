"""Update statements: every aggregate upsert carries the batch's watermark guard."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl
import pytest

from pulse.ingest.aggregate import Aggregates, aggregate
from pulse.ingest.batch import OffsetRange
from pulse.ingest.validate import DEAD_SCHEMA
from pulse.store.schema import (
    ENTITY_MARKS,
    item_hour_id,
    item_hour_ids_of,
    item_minute_id,
)
from pulse.store.statements import (
    Guard,
    activity_bin,
    dead_letter_statements,
    entity_totals_update,
    item_hour_updates,
    item_minute_updates,
    minute_sketch_updates,
    minute_updates,
    period_updates,
    totals_update,
    user_bin_changes,
)

TYPES = ("view", "click")
ITEM_BUCKETS = 16
T0 = 1_795_737_600_000
GUARD = Guard((OffsetRange(3, 100, 180), OffsetRange(1, 40, 90)), topic="clicks.eu")
HELD = {"wm.clicks~eu.p3": {"$not": {"$gte": 100}}, "wm.clicks~eu.p1": {"$not": {"$gte": 40}}}
"""The guard: the document holds no record of the batch in any of its partitions."""


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


def test_guard_checks_every_partition_of_its_topic_and_marks_all() -> None:
    assert GUARD.filter == HELD
    assert GUARD.marks_set == {"wm.clicks~eu.p3": 180, "wm.clicks~eu.p1": 90}
    assert GUARD.key == ("wm.clicks~eu.p1", 90)


def test_watermarks_of_two_topics_are_apart_and_the_old_layout_has_none() -> None:
    ranges = (OffsetRange(0, 0, 9),)
    a, b, old = Guard(ranges, topic="a"), Guard(ranges, topic="b"), Guard(ranges)
    assert set(a.marks_set).isdisjoint(b.marks_set)
    assert old.marks_set == {"wm.p0": 9}


def test_minute_statements_carry_sketches_and_item_minutes_their_keys() -> None:
    aggregates = _aggregates()
    minutes = minute_updates(aggregates, GUARD, TYPES)
    assert [s["q"]["_id"] for s in minutes] == ["2026-11-27T00:00Z", "2026-11-27T00:01Z"]
    assert not any(key.startswith("users_hll.") for key in minutes[0]["u"]["$max"])
    sketches = minute_sketch_updates(aggregates, GUARD)
    assert [s["q"]["_id"] for s in sketches] == ["2026-11-27T00:00Z", "2026-11-27T00:01Z"]
    assert any(key.startswith("users_hll.r") for key in sketches[0]["u"]["$max"])
    mark = "wm.clicks~eu.p3"
    assert sketches[0]["u"]["$max"][mark] == minutes[0]["u"]["$max"][mark]
    item_minutes = item_minute_updates(aggregates, GUARD, TYPES, ITEM_BUCKETS)
    assert [s["q"]["_id"] for s in item_minutes] == [
        item_minute_id("i1", "2026-11-27T00:00Z", ITEM_BUCKETS),
        item_minute_id("i2", "2026-11-27T00:01Z", ITEM_BUCKETS),
    ]
    assert item_minutes[0]["u"]["$inc"] == {
        "i.i1.total": 2,
        "i.i1.types.view": 1,
        "i.i1.types.click": 1,
    }
    assert item_minutes[0]["u"]["$setOnInsert"] == {"minute": datetime(2026, 11, 27, tzinfo=UTC)}


def test_items_of_one_minute_share_their_bucket_statement() -> None:
    minute = "2026-11-27T00:00Z"
    items = [f"i{n}" for n in range(3 * ITEM_BUCKETS)]
    events = pl.DataFrame(
        {
            "event_id": [f"e{n}" for n in range(len(items))],
            "user_id": ["u1"] * len(items),
            "item_id": items,
            "interaction_type": ["view"] * len(items),
            "timestamp": [T0] * len(items),
        }
    )
    statements = item_minute_updates(aggregate(events, TYPES), GUARD, TYPES, ITEM_BUCKETS)
    assert len(statements) == len({item_minute_id(item, minute, ITEM_BUCKETS) for item in items})
    assert len(statements) <= ITEM_BUCKETS
    held = [key for s in statements for key in s["u"]["$inc"] if key.endswith(".total")]
    assert sorted(held) == sorted(f"i.{item}.total" for item in items)
    for statement in statements:
        keys = statement["u"]["$inc"]
        assert {item_minute_id(key.split(".")[1], minute, ITEM_BUCKETS) for key in keys} == {
            statement["q"]["_id"]
        }


def test_item_hour_statements_add_each_items_hour_in_its_bucket() -> None:
    hour = 3_600_000
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "user_id": ["u1"] * 4,
            "item_id": ["i1", "i1", "i1", "i2"],
            "interaction_type": ["view", "click", "view", "view"],
            "timestamp": [T0, T0 + hour - 1, T0 + hour, T0 + 61_000],
        }
    )
    statements = item_hour_updates(aggregate(events, TYPES), GUARD, ITEM_BUCKETS)
    added = {(s["q"]["_id"], key): n for s in statements for key, n in s["u"]["$inc"].items()}
    first, second = datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 27, 1, tzinfo=UTC)
    assert added == {
        (item_hour_id("i1", first, ITEM_BUCKETS), "i.i1"): 2,
        (item_hour_id("i1", second, ITEM_BUCKETS), "i.i1"): 1,
        (item_hour_id("i2", first, ITEM_BUCKETS), "i.i2"): 1,
    }
    assert item_hour_id("i1", second, ITEM_BUCKETS).startswith("2026-11-27T01Z|b")
    many = pl.DataFrame(
        {
            "event_id": [f"e{n}" for n in range(3 * ITEM_BUCKETS)],
            "user_id": ["u1"] * 3 * ITEM_BUCKETS,
            "item_id": [f"i{n}" for n in range(3 * ITEM_BUCKETS)],
            "interaction_type": ["view"] * 3 * ITEM_BUCKETS,
            "timestamp": [T0] * 3 * ITEM_BUCKETS,
        }
    )
    hourly = item_hour_updates(aggregate(many, TYPES), GUARD, ITEM_BUCKETS)
    assert len(hourly) == len(item_hour_ids_of(first, ITEM_BUCKETS)) == ITEM_BUCKETS // 4
    for statement in statements:
        assert {key: statement["q"][key] for key in HELD} == HELD
        assert statement["u"]["$max"] == GUARD.marks_set
        assert statement["u"]["$setOnInsert"]["hour"] in (first, second)


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


def test_hours_and_days_add_up_their_minutes_under_the_batch_guard() -> None:
    events = pl.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4"],
            "user_id": ["u1", "u1", "u2", "u2"],
            "item_id": ["i1", "i2", "i1", "i1"],
            "interaction_type": ["view", "view", "click", "view"],
            # two minutes of one hour, the next hour, the next day
            "timestamp": [T0, T0 + 61_000, T0 + 3_600_000, T0 + 86_400_000],
        }
    )
    statements = period_updates(aggregate(events, TYPES), GUARD, TYPES)
    by_id = {s["q"]["_id"]: s for s in statements}
    start = datetime.fromtimestamp(T0 / 1000, UTC)
    assert {i: s["u"]["$inc"] for i, s in by_id.items()} == {
        f"hour|{start:%Y-%m-%dT%H}Z": {"total": 2, "types.view": 2},
        f"hour|{start:%Y-%m-%dT}{start.hour + 1:02d}Z": {"total": 1, "types.click": 1},
        f"hour|{start.replace(day=start.day + 1):%Y-%m-%dT%H}Z": {"total": 1, "types.view": 1},
        f"day|{start:%Y-%m-%d}": {"total": 3, "types.view": 2, "types.click": 1},
        f"day|{start.replace(day=start.day + 1):%Y-%m-%d}": {"total": 1, "types.view": 1},
    }
    assert all(HELD.items() <= s["q"].items() for s in statements)


def test_entity_totals_statement_adds_new_users_under_the_entity_watermarks() -> None:
    guard = Guard(GUARD.ranges, ENTITY_MARKS, "t")
    statement = entity_totals_update(guard, new_users=2, new_items=1, user_bins={"user_bins.b0": 2})
    assert statement["q"] == {
        "_id": "global",
        "ws.t.p3": {"$not": {"$gte": 100}},
        "ws.t.p1": {"$not": {"$gte": 40}},
    }
    assert statement["u"]["$inc"] == {"users": 2, "items": 1, "user_bins.b0": 2}
    assert set(statement["u"]["$max"]) == {"ws.t.p1", "ws.t.p3"}


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
    (statement,) = dead_letter_statements(dead, "interactions", "b1", now, keep_bytes=1_024)
    assert statement["q"] == {"_id": "interactions:2:77"}
    doc = statement["u"]["$setOnInsert"]
    assert doc["raw"] == b"{oops" and doc["reason"] == "not valid JSON" and doc["field"] is None
    assert doc["size"] == 5 and not doc["truncated"]
    assert doc["sha256"] == hashlib.sha256(b"{oops").hexdigest()


@pytest.mark.parametrize(
    ("field", "kept_bytes"),
    [("", 16), ("user_id", 100)],  # a record refused as a whole keeps a prefix; by field, all
)
def test_dead_letters_keep_a_bounded_prefix_of_records_refused_whole(
    field: str, kept_bytes: int
) -> None:
    value = b"x" * 100
    dead = pl.DataFrame(
        {
            "partition": [0],
            "offset": [1],
            "kafka_ts": [2**63 - 1],  # a producer's timestamp no datetime can hold
            "key": [b"k" * 5_000],
            "value": [value],
            "reason": ["r"],
            "field": [field],
        },
        schema=DEAD_SCHEMA,
    )
    now = datetime(2026, 11, 27, tzinfo=UTC)
    (statement,) = dead_letter_statements(dead, "t", "b1", now, keep_bytes=16)
    doc = statement["u"]["$setOnInsert"]
    assert doc["raw"] == value[:kept_bytes]
    assert doc["truncated"] == (kept_bytes < len(value))
    assert doc["size"] == 100 and doc["sha256"] == hashlib.sha256(value).hexdigest()
    assert len(doc["key"]) == 1_024
    assert doc["kafka_timestamp"] is None and doc["kafka_ts"] == 2**63 - 1


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
