"""Aggregation of one micro-batch, checked with polars.testing on small frames."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pulse.ingest import sketches
from pulse.ingest.aggregate import TIME, aggregate, count

TYPES = ("view", "click")
T0 = 1_795_737_600_000  # 2026-11-27T00:00:00Z


def _events(rows: list[tuple[str, str, str, int]]) -> pl.DataFrame:
    frame = pl.DataFrame(
        rows,
        schema={
            "user_id": pl.String,
            "item_id": pl.String,
            "interaction_type": pl.String,
            "timestamp": pl.Int64,
        },
        orient="row",
    )
    return frame.with_columns(pl.format("e{}", pl.int_range(pl.len())).alias("event_id"))


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def test_empty_batch_gives_empty_aggregates_and_zero_totals() -> None:
    result = aggregate(_events([]), TYPES)
    assert result.users.height == result.items.height == result.minutes.height == 0
    assert result.item_minutes.height == 0 and result.minute_sketches == {}
    assert result.totals.select("events", "types.view", "types.click").row(0) == (0, 0, 0)


def test_single_event() -> None:
    result = aggregate(_events([("u1", "i1", "click", T0 + 1_500)]), TYPES)
    expected_user = pl.DataFrame(
        {
            "user_id": ["u1"],
            "total": [1],
            "types.view": [0],
            "types.click": [1],
            "first_seen": [_at(T0 + 1_500)],
            "last_seen": [_at(T0 + 1_500)],
            "times": [[T0 + 1_500]],
        },
        schema_overrides={"first_seen": TIME, "last_seen": TIME, "times": pl.List(pl.Int64)},
    )
    assert_frame_equal(result.users, expected_user)
    assert result.minutes.select("minute_id", "total").rows() == [("2026-11-27T00:00Z", 1)]
    assert result.item_minutes.select("item_id", "minute_id", "total").rows() == [
        ("i1", "2026-11-27T00:00Z", 1)
    ]


def test_counts_per_user_item_and_type() -> None:
    rows = [
        ("u1", "i1", "view", T0),
        ("u1", "i2", "view", T0 + 10),
        ("u2", "i1", "click", T0 + 20),
        ("u1", "i1", "click", T0 + 30),
    ]
    result = aggregate(_events(rows), TYPES)
    assert_frame_equal(
        result.users.select("user_id", "total", "types.view", "types.click"),
        pl.DataFrame(
            {"user_id": ["u1", "u2"], "total": [3, 1], "types.view": [2, 0], "types.click": [1, 1]}
        ),
    )
    assert_frame_equal(
        result.items.select("item_id", "total", "types.view", "types.click", "first_seen"),
        pl.DataFrame(
            {
                "item_id": ["i1", "i2"],
                "total": [3, 1],
                "types.view": [1, 1],
                "types.click": [2, 0],
                "first_seen": [_at(T0), _at(T0 + 10)],
            },
            schema_overrides={"first_seen": TIME},
        ),
    )
    assert result.totals.select("events", "types.view", "types.click").row(0) == (4, 2, 2)


@pytest.mark.parametrize(
    ("offsets", "minutes"),
    [
        ([0, 59_999], ["2026-11-27T00:00Z"]),
        ([59_999, 60_000], ["2026-11-27T00:00Z", "2026-11-27T00:01Z"]),
        ([-1, 0], ["2026-11-26T23:59Z", "2026-11-27T00:00Z"]),
    ],
)
def test_minute_windows_split_exactly_at_the_boundary(
    offsets: list[int], minutes: list[str]
) -> None:
    rows = [("u1", "i1", "view", T0 + offset) for offset in offsets]
    result = aggregate(_events(rows), TYPES)
    assert result.minutes["minute_id"].to_list() == minutes
    assert result.minutes["minute"].to_list() == [
        datetime.strptime(m, "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC) for m in minutes
    ]
    assert result.minutes["total"].sum() == 2


def test_two_batches_add_up_to_one() -> None:
    rows = [(f"u{n % 3}", f"i{n % 4}", TYPES[n % 2], T0 + n * 7_001) for n in range(40)]
    whole = aggregate(_events(rows), TYPES)
    first, second = aggregate(_events(rows[:17]), TYPES), aggregate(_events(rows[17:]), TYPES)
    merged = (
        pl.concat([first.item_minutes, second.item_minutes])
        .group_by("item_id", "minute", "minute_id")
        .agg(pl.col("total", "types.view", "types.click").sum())
        .sort("item_id", "minute")
    )
    assert_frame_equal(merged, whole.item_minutes)
    assert first.totals["events"][0] + second.totals["events"][0] == whole.totals["events"][0]


@pytest.mark.parametrize("size", [0, 1, 40])
def test_a_micro_batchs_counts_are_the_counts_of_the_full_aggregation(size: int) -> None:
    rows = [(f"u{n % 3}", f"i{n % 4}", TYPES[n % 2], T0 + n * 7_001) for n in range(size)]
    counts, whole = count(_events(rows), TYPES), aggregate(_events(rows), TYPES)
    assert_frame_equal(counts.minutes, whole.minutes)
    assert_frame_equal(counts.totals, whole.totals)
    assert counts.totals["events"][0] == size


def test_minute_sketches_count_distinct_users_and_items() -> None:
    rows = [(f"u{n % 50}", f"i{n % 7}", "view", T0 + n) for n in range(500)]
    users, items = aggregate(_events(rows), TYPES).minute_sketches["2026-11-27T00:00Z"]
    assert sketches.estimate(users) == pytest.approx(50, rel=0.05)
    assert sketches.estimate(items) == pytest.approx(7, rel=0.05)
