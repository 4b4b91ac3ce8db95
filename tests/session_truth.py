"""Sessions as a ground truth: computed from the events a test sent, in one Polars pass over
the whole stream, not by Pulse's own code (pulse/ingest/sessions.py walks each user's events
flush by flush)."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

MINUTE_MS = 60_000
FIGURES = ("started", "ended", "events", "length_ms", "bounces")


def sessions(events: pl.DataFrame, idle_ms: int) -> pl.DataFrame:
    """One row per session (user_id, start, last, events), from events with user_id,
    timestamp (ms) and the order their partition holds them (`order`)."""
    ordered = events.sort("user_id", "order").with_columns(
        pl.col("timestamp").cum_max().shift(1).over("user_id").alias("latest_before")
    )
    opened = ordered.with_columns(
        (
            pl.col("latest_before").is_null()
            | (pl.col("timestamp") - pl.col("latest_before") > idle_ms)
        )
        .cum_sum()
        .over("user_id")
        .alias("session")
    )
    return opened.group_by("user_id", "session").agg(
        pl.col("timestamp").first().alias("start"),
        pl.col("timestamp").max().alias("last"),
        pl.len().alias("events"),
    )


def by_minute(events: pl.DataFrame, idle_ms: int) -> dict[datetime, dict[str, int]]:
    """Per minute: sessions started in it, and the sessions ending in it (latest event plus
    the idle time), their events, total length and bounces; only non-zero figures."""
    found = sessions(events, idle_ms)
    started = found.group_by((pl.col("start") // MINUTE_MS).alias("minute")).agg(
        pl.len().alias("started")
    )
    ended = found.group_by(((pl.col("last") + idle_ms) // MINUTE_MS).alias("minute")).agg(
        pl.len().alias("ended"),
        pl.col("events").sum(),
        (pl.col("last") - pl.col("start")).sum().alias("length_ms"),
        (pl.col("events") == 1).sum().alias("bounces"),
    )
    truth: dict[datetime, dict[str, int]] = {}
    for frame in (started, ended):
        for row in frame.iter_rows(named=True):
            moment = datetime.fromtimestamp(row.pop("minute") * MINUTE_MS / 1000, UTC)
            truth.setdefault(moment, {}).update({k: int(v) for k, v in row.items() if v})
    return truth


def overall(events: pl.DataFrame, idle_ms: int) -> dict[str, int]:
    """Every session's figures together (each session counted as ended where it ends)."""
    total = dict.fromkeys(FIGURES, 0)
    for figures in by_minute(events, idle_ms).values():
        for name, n in figures.items():
            total[name] += n
    return {name: n for name, n in total.items() if n}
