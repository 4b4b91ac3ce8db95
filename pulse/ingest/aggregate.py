"""Polars aggregation of one micro-batch of valid events (pure: frames in, frames out).

Every figure is a sum, min, max or sketch, so the aggregates of consecutive batches merge into
MongoDB with `$inc`, `$min` and `$max` and equal the aggregates of all events at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pulse.ingest import sketches

MINUTE_MS = 60_000
MINUTE_FORMAT = "%Y-%m-%dT%H:%MZ"
TIME = pl.Datetime("ms", "UTC")


@dataclass(frozen=True)
class Aggregates:
    """One batch's contribution to every aggregate document."""

    users: pl.DataFrame
    """user_id, total, first_seen, last_seen, one count column per type ("types.<type>")."""
    items: pl.DataFrame
    """item_id, total, first_seen, last_seen, type counts."""
    minutes: pl.DataFrame
    """minute (start, UTC), minute_id ('2026-11-27T18:05Z'), total, type counts."""
    item_minutes: pl.DataFrame
    """item_id, minute, minute_id, total, type counts."""
    minute_sketches: dict[str, tuple[dict[int, int], dict[int, int]]]
    """minute_id -> HyperLogLog registers of its (users, items)."""
    totals: pl.DataFrame
    """One row: events, first_seen, last_seen, type counts."""
    user_minutes: pl.DataFrame
    """partition, minute_id, user_id, count: a user's interactions per minute (for alerts)."""


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


def aggregate(events: pl.DataFrame, types: tuple[str, ...]) -> Aggregates:
    """Aggregate valid events (event schema) by user, item, minute, item x minute and overall."""
    timed = events.lazy().with_columns(
        pl.col("timestamp").cast(TIME).alias("seen"),
        (pl.col("timestamp") // MINUTE_MS * MINUTE_MS).cast(TIME).alias("minute"),
    )
    timed = timed.with_columns(pl.col("minute").dt.strftime(MINUTE_FORMAT).alias("minute_id"))
    if "partition" not in events.columns:  # frames built by hand, e.g. in tests
        timed = timed.with_columns(pl.lit(0, pl.Int32).alias("partition"))
    users, items, minutes, item_minutes, totals, user_minutes = pl.collect_all(
        [
            timed.group_by("user_id").agg(*_counts(types), *_seen()).sort("user_id"),
            timed.group_by("item_id").agg(*_counts(types), *_seen()).sort("item_id"),
            timed.group_by("minute", "minute_id").agg(*_counts(types)).sort("minute"),
            timed.group_by("item_id", "minute", "minute_id")
            .agg(*_counts(types))
            .sort("item_id", "minute"),
            timed.select(
                pl.len().cast(pl.Int64).alias("events"),
                *[
                    (pl.col("interaction_type") == kind)
                    .sum()
                    .cast(pl.Int64)
                    .alias(type_column(kind))
                    for kind in types
                ],
                *_seen(),
            ),
            timed.group_by("partition", "minute_id", "user_id")
            .agg(pl.len().cast(pl.Int64).alias("count"))
            .sort("partition", "minute_id", "user_id"),
        ]
    )
    return Aggregates(
        users=users,
        items=items,
        minutes=minutes,
        item_minutes=item_minutes,
        minute_sketches=_sketches(events),
        totals=totals,
        user_minutes=user_minutes,
    )


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
