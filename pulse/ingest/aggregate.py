"""Polars aggregation of valid events (pure: frames in, frames out).

`count` gives a micro-batch's count tier (per minute and overall); `aggregate` gives every
figure, for an entity flush (docs/consumer.md, "Two tiers").

Every figure is a sum, min, max or sketch, so the aggregates of consecutive batches merge into
MongoDB with `$inc`, `$min` and `$max` and equal the aggregates of all events at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

import polars as pl

from pulse.ingest import sketches

MINUTE_MS = 60_000
MINUTE_FORMAT = "%Y-%m-%dT%H:%MZ"
TIME = pl.Datetime("ms", "UTC")


@dataclass(frozen=True)
class Counts:
    """One batch's contribution to the count tier: the per-minute and overall counts."""

    minutes: pl.DataFrame
    """minute (start, UTC), minute_id ('2026-11-27T18:05Z'), total, type counts."""
    totals: pl.DataFrame
    """One row: events, first_seen, last_seen, type counts."""


@dataclass(frozen=True)
class Aggregates(Counts):
    """One batch's (or entity flush's) contribution to every aggregate document."""

    users: pl.DataFrame
    """user_id, total, one count column per type ("types.<type>"), first_seen, last_seen,
    times (the user's event times in ms, in the order their partitions hold them: what its
    sessions are built from, pulse/ingest/sessions.py)."""
    items: pl.DataFrame
    """item_id, total, first_seen, last_seen, type counts."""
    item_minutes: pl.DataFrame
    """item_id, minute, minute_id, total, type counts."""
    item_hours: pl.DataFrame
    """item_id, hour (its start), total."""
    minute_sketches: dict[str, tuple[dict[int, int], dict[int, int]]]
    """minute_id -> HyperLogLog registers of its (users, items)."""
    user_minutes: pl.DataFrame
    """partition, minute_id, user_id, count: a user's interactions per minute (for alerts)."""
    day_sketches: dict[str, dict[int, int]] = field(default_factory=dict)
    """day ('2026-12-02', UTC) -> HyperLogLog registers of its users: the union of its
    minutes' (for daily, weekly and monthly active users)."""


def type_column(kind: str) -> str:
    """Name of the count column of one interaction type."""
    return f"types.{kind}"


def _counts(types: tuple[str, ...]) -> list[pl.Expr]:
    return [
        pl.len().cast(pl.Int64).alias("total"),
        *[
            (pl.col("interaction_type") == kind).sum().cast(pl.Int64).alias(type_column(kind))
            for kind in types
        ],
    ]


def _seen() -> list[pl.Expr]:
    return [pl.col("seen").min().alias("first_seen"), pl.col("seen").max().alias("last_seen")]


def _timed(events: pl.DataFrame) -> pl.LazyFrame:
    """The events with their time (`seen`), minute and minute id."""
    timed = events.lazy().with_columns(
        pl.col("timestamp").cast(TIME).alias("seen"),
        (pl.col("timestamp") // MINUTE_MS * MINUTE_MS).cast(TIME).alias("minute"),
    )
    timed = timed.with_columns(pl.col("minute").dt.strftime(MINUTE_FORMAT).alias("minute_id"))
    if "partition" not in events.columns:  # frames built by hand, e.g. in tests
        timed = timed.with_columns(pl.lit(0, pl.Int32).alias("partition"))
    return timed


def _count_queries(timed: pl.LazyFrame, types: tuple[str, ...]) -> list[pl.LazyFrame]:
    """The queries of Counts' frames, in its field order."""
    return [
        timed.group_by("minute", "minute_id").agg(*_counts(types)).sort("minute"),
        timed.select(
            pl.len().cast(pl.Int64).alias("events"),
            *[
                (pl.col("interaction_type") == kind).sum().cast(pl.Int64).alias(type_column(kind))
                for kind in types
            ],
            *_seen(),
        ),
    ]


def count(events: pl.DataFrame, types: tuple[str, ...]) -> Counts:
    """Only the count tier's figures: what every micro-batch writes at once (a fraction of
    `aggregate`'s work, which groups by user and item too)."""
    minutes, totals = pl.collect_all(_count_queries(_timed(events), types))
    return Counts(minutes=minutes, totals=totals)


def aggregate(events: pl.DataFrame, types: tuple[str, ...]) -> Aggregates:
    """Aggregate valid events (event schema) by user, item, minute, item x minute and overall."""
    timed = _timed(events)
    minute_sketches = _sketches(events)
    minutes, totals, users, items, item_minutes, item_hours, user_minutes = pl.collect_all(
        [
            *_count_queries(timed, types),
            timed.group_by("user_id")
            .agg(*_counts(types), *_seen(), _times(events))
            .sort("user_id"),
            timed.group_by("item_id").agg(*_counts(types), *_seen()).sort("item_id"),
            timed.group_by("item_id", "minute", "minute_id")
            .agg(*_counts(types))
            .sort("item_id", "minute"),
            timed.group_by("item_id", pl.col("minute").dt.truncate("1h").alias("hour"))
            .agg(pl.len().cast(pl.Int64).alias("total"))
            .sort("item_id", "hour"),
            timed.group_by("partition", "minute_id", "user_id")
            .agg(pl.len().cast(pl.Int64).alias("count"))
            .sort("partition", "minute_id", "user_id"),
        ]
    )
    return Aggregates(
        minutes=minutes,
        totals=totals,
        users=users,
        items=items,
        item_minutes=item_minutes,
        item_hours=item_hours,
        minute_sketches=minute_sketches,
        user_minutes=user_minutes,
        day_sketches=sketches.union_by(
            {minute: users for minute, (users, _) in minute_sketches.items()}, _day_of_minute
        ),
    )


def _times(events: pl.DataFrame) -> pl.Expr:
    """A user's event times in the order their partitions hold them: a flush re-read from
    Kafka after a crash may list its batches in another order, and must give the same
    sessions."""
    times = pl.col("timestamp").cast(pl.Int64)
    if "offset" in events.columns:
        times = times.sort_by("partition", "offset")
    return times.alias("times")


def _day_of_minute(minute_id: str) -> str:
    return minute_id[: len("2026-12-02")]


def _sketches(events: pl.DataFrame) -> dict[str, tuple[dict[int, int], dict[int, int]]]:
    """Per minute, HyperLogLog registers of its distinct users and items."""
    distinct = (
        events.lazy()
        .with_columns(
            (pl.col("timestamp") // MINUTE_MS * MINUTE_MS)
            .cast(TIME)
            .dt.strftime(MINUTE_FORMAT)
            .alias("minute_id")
        )
        .group_by("minute_id")
        .agg(pl.col("user_id").unique(), pl.col("item_id").unique())
        .collect()
    )
    return {
        minute_id: (sketches.registers(users), sketches.registers(items))
        for minute_id, users, items in distinct.iter_rows()
    }


def _minute_of(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(MINUTE_FORMAT)


def minutes_since(minutes: pl.DataFrame, cutoff: datetime) -> pl.DataFrame:
    """The rows of a per-minute frame (with `minute_id`) from `cutoff`'s minute on."""
    return minutes.filter(pl.col("minute_id") >= _minute_of(cutoff))


def without_detail_before(aggregates: Aggregates, cutoff: datetime) -> Aggregates:
    """The aggregates less their per-minute detail (item x minute, user x minute, sketches)
    of minutes before `cutoff`'s: detail past its retention is not written again, so pruning
    (pulse/store/retention.py) never meets a minute behind where it stands. Item x hour
    figures are kept: hours outlive the oldest event accepted (PULSE_RETENTION_HOUR_DAYS)."""
    first = _minute_of(cutoff)
    return replace(
        aggregates,
        item_minutes=minutes_since(aggregates.item_minutes, cutoff),
        user_minutes=minutes_since(aggregates.user_minutes, cutoff),
        minute_sketches={m: s for m, s in aggregates.minute_sketches.items() if m >= first},
    )
