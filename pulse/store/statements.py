"""MongoDB update statements for one batch's aggregates (pure: builds documents, sends nothing).

Every statement is an upsert guarded by the batch's offset watermarks, which is what makes a
replay harmless (see docs/consumer.md):

    filter: {_id: X, "wm.<topic>.p<r>": {$not: {$gte: <first offset of r>}}, ...}  (every r)
    update: {$inc: counts, $min/$max: times, $max: {"wm.<topic>.p<r>": <last offset of r>, ...}}

A document that already holds this batch (or any later record of one of its partitions)
fails the filter, so the upsert collides with its own _id (duplicate key, code 11000) instead
of counting twice; the store treats that error as "already applied". Entity flushes (users,
items, item x minute) carry watermarks of their own, `ws` instead of `wm`, over their own
offset ranges. Watermarks name the topic, so topics written into one database never mistake
each other's offsets for their own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import polars as pl
from bson.int64 import Int64

from pulse.events import EARLIEST_MS, LATEST_MS
from pulse.ingest.aggregate import MINUTE_MS, Aggregates, Counts, type_column
from pulse.ingest.batch import OffsetRange
from pulse.ingest.sessions import FIELDS as SESSION_FIELDS
from pulse.ingest.sessions import MinuteChanges
from pulse.ingest.validate import KEY_KEPT_BYTES, kept
from pulse.store.schema import (
    COUNT_MARKS,
    DAY,
    DEAD_FIELDS,
    HOUR,
    MINUTE,
    SESSIONS_ALL,
    TOTALS_ID,
    WHOLE_RECORD,
    item_hour_id,
    item_minute_id,
    item_path,
    marks_field,
    period_id,
    record_id,
    user_minute_id,
)

Statement = dict[str, Any]


@dataclass(frozen=True)
class Guard:
    """The watermarks that mark a document as holding one batch (or one entity flush)."""

    ranges: tuple[OffsetRange, ...]
    marks: str = COUNT_MARKS
    """`wm` for the per-batch tier, `ws` for entity flushes (pulse/store/schema.py)."""
    topic: str | None = None
    """The topic the watermarks belong to; None for the layout before they named it."""

    @property
    def filter(self) -> dict[str, Any]:
        """The document holds no record of the batch, in any of its partitions: a batch that
        overlaps one the document holds, with other boundaries (a stale member's), matches
        no document it could count twice."""
        return {
            marks_field(self.marks, self.topic, r.partition): {"$not": {"$gte": r.first}}
            for r in self.ranges
        }

    @property
    def key(self) -> tuple[str, int]:
        """A watermark a document holding the batch has, and the offset it holds there."""
        first = min(self.ranges, key=lambda r: r.partition)
        return marks_field(self.marks, self.topic, first.partition), first.last

    @property
    def marks_set(self) -> dict[str, int]:
        """The watermarks a document holding the batch has: every range's last offset."""
        return {marks_field(self.marks, self.topic, r.partition): r.last for r in self.ranges}


def _statement(doc_id: str, guard: Guard, update: dict[str, Any]) -> Statement:
    if "$inc" in update:
        update = update | {"$inc": as_int64(update["$inc"])}
    return {"q": {"_id": doc_id, **guard.filter}, "u": update, "upsert": True}


def as_int64(counts: Mapping[str, int]) -> dict[str, Int64]:
    """`$inc` values as 64-bit integers. FerretDB 1.24 adds two 32-bit integers modulo 2^32
    (2,147,483,638 + 20 gives -2,147,483,638; MongoDB widens the result instead), and a
    counter stored from a small first value is 32-bit: at 500 events/s the global count
    would wrap after 50 days, a sum of session lengths within hours. A 64-bit increment
    widens a stored 32-bit counter on both servers, so databases written before are mended
    by their next write."""
    return {path: Int64(n) for path, n in counts.items()}


def entity_counts(
    row: dict[str, Any], types: tuple[str, ...], total: str = "total"
) -> dict[str, int]:
    """A row's total and its non-zero counts per type, by field name ('types.<type>')."""
    counts = {total: row[total]}
    for kind in types:
        column = type_column(kind)
        if row[column]:
            counts[column] = row[column]
    return counts


def minute_updates(aggregates: Counts, guard: Guard, types: tuple[str, ...]) -> list[Statement]:
    """Per-minute counts (what the dashboard reads; its sketches live apart, see below)."""
    return [
        _statement(
            row["minute_id"],
            guard,
            {
                "$inc": entity_counts(row, types),
                "$max": guard.marks_set,
                "$setOnInsert": {"minute": row["minute"]},
            },
        )
        for row in aggregates.minutes.iter_rows(named=True)
    ]


def period_updates(aggregates: Counts, guard: Guard, types: tuple[str, ...]) -> list[Statement]:
    """The per-minute counts summed per hour and per day (`periods`), in the same update."""
    minutes = aggregates.minutes
    sums = [pl.col("total").sum(), *(pl.col(type_column(kind)).sum() for kind in types)]
    statements = []
    for period, every in ((HOUR, "1h"), (DAY, "1d")):
        grouped = minutes.group_by(pl.col("minute").dt.truncate(every).alias("start")).agg(sums)
        for row in grouped.sort("start").iter_rows(named=True):
            statements.append(
                _statement(
                    period_id(period, row["start"]),
                    guard,
                    {
                        "$inc": entity_counts(row, types),
                        "$max": guard.marks_set,
                        "$setOnInsert": {"start": row["start"]},
                    },
                )
            )
    return statements


def minute_sketch_updates(aggregates: Aggregates, guard: Guard) -> list[Statement]:
    """Per minute, the HyperLogLog registers of its active users and items, merged with
    `$max`. They live in their own collection: 2 x 1,024 fields make a document slow to read
    on FerretDB, and the dashboard only needs the estimates the consumer stores from them."""
    statements = []
    for minute_id, (users, items) in aggregates.minute_sketches.items():
        sketch = {f"users_hll.r{index}": rank for index, rank in users.items()}
        sketch |= {f"items_hll.r{index}": rank for index, rank in items.items()}
        statements.append(_statement(minute_id, guard, {"$max": {**sketch, **guard.marks_set}}))
    return statements


def session_updates(changes: MinuteChanges, guard: Guard, since: datetime) -> list[Statement]:
    """What a flush changes of the session figures of each minute (from `since`'s on: older
    ones are past their retention), hour and day it touches, and since the start, with
    `$inc`."""
    first = since.replace(second=0, microsecond=0)
    summed: dict[str, list[int]] = {}
    for minute, figures in changes.items():
        start = datetime.fromtimestamp(minute * MINUTE_MS / 1000, UTC)
        periods = [period_id(HOUR, start), period_id(DAY, start), SESSIONS_ALL]
        if start >= first:
            periods.append(period_id(MINUTE, start))
        for doc_id in periods:
            total = summed.setdefault(doc_id, [0] * len(SESSION_FIELDS))
            for index, n in enumerate(figures):
                total[index] += n
    statements = []
    for doc_id, figures in sorted(summed.items()):
        counts = {name: n for name, n in zip(SESSION_FIELDS, figures, strict=True) if n}
        if counts:
            statements.append(_statement(doc_id, guard, {"$inc": counts, "$max": guard.marks_set}))
    return statements


def day_sketch_updates(aggregates: Aggregates, guard: Guard, since: str) -> list[Statement]:
    """Per UTC day from `since` ('2026-12-02') on, the registers of its active users, merged
    with `$max` (older days are past their retention: none is written again)."""
    return [
        _statement(
            day,
            guard,
            {"$max": {f"users_hll.r{i}": rank for i, rank in users.items()} | guard.marks_set},
        )
        for day, users in sorted(aggregates.day_sketches.items())
        if day >= since
    ]


def item_minute_updates(
    aggregates: Aggregates, guard: Guard, types: tuple[str, ...], buckets: int
) -> list[Statement]:
    """Per item per minute counts (alerts and item charts read these), one statement per item
    x minute bucket (`buckets` a minute)."""
    updates: dict[str, dict[str, dict[str, Any]]] = {}
    for row in aggregates.item_minutes.iter_rows(named=True):
        bucket = item_minute_id(row["item_id"], row["minute_id"], buckets)
        update = updates.setdefault(
            bucket,
            {"$inc": {}, "$max": dict(guard.marks_set), "$setOnInsert": {"minute": row["minute"]}},
        )
        path = item_path(row["item_id"])
        update["$inc"] |= {f"{path}.{name}": n for name, n in entity_counts(row, types).items()}
    return [_statement(bucket, guard, update) for bucket, update in sorted(updates.items())]


def item_hour_updates(aggregates: Aggregates, guard: Guard, buckets: int) -> list[Statement]:
    """Per item per hour totals (item trends over days read these), one statement per item
    x hour bucket (`buckets` an hour)."""
    updates: dict[str, dict[str, dict[str, Any]]] = {}
    for item, hour, total in aggregates.item_hours.select("item_id", "hour", "total").iter_rows():
        bucket = item_hour_id(item, hour, buckets)
        update = updates.setdefault(
            bucket, {"$inc": {}, "$max": dict(guard.marks_set), "$setOnInsert": {"hour": hour}}
        )
        update["$inc"][item_path(item)] = total
    return [_statement(bucket, guard, update) for bucket, update in sorted(updates.items())]


def totals_update(
    aggregates: Counts,
    guard: Guard,
    types: tuple[str, ...],
    *,
    dead_lettered: int,
    applied_at: datetime,
    dead_fields: dict[str, int] | None = None,
    isolated: int = 0,
) -> Statement:
    """The global document's per-batch figures: totals per type, dead letters (by field:
    `dead_fields`; `isolated`: how many because processing or writing them failed), newest
    event."""
    row = aggregates.totals.row(0, named=True)
    increments = entity_counts(row, types, total="events") | {"dead_lettered": dead_lettered}
    increments |= {f"{DEAD_FIELDS}.{key}": n for key, n in (dead_fields or {}).items()}
    if isolated:
        increments["isolated"] = isolated
    maxima: dict[str, Any] = {**guard.marks_set, "applied_at": applied_at}
    minima: dict[str, Any] = {}
    if row["events"]:
        maxima["last_event"] = row["last_seen"]
        minima["first_event"] = row["first_seen"]
    update: dict[str, Any] = {"$inc": increments, "$max": maxima}
    if minima:
        update["$min"] = minima
    return _statement(TOTALS_ID, guard, update)


def entity_totals_update(
    guard: Guard, *, new_users: int, new_items: int, user_bins: dict[str, int]
) -> Statement:
    """The global document's entity figures: distinct users and items, the user histogram."""
    increments = {"users": new_users, "items": new_items} | user_bins
    return _statement(TOTALS_ID, guard, {"$inc": increments, "$max": guard.marks_set})


def user_minute_updates(aggregates: Aggregates, guard: Guard) -> list[Statement]:
    """Per minute and partition, each user's count (`counts.<user>`): what a per-user alert
    rule reads. A user's events all come from one partition, so no two consumers ever
    write the same document."""
    statements = []
    frame = aggregates.user_minutes
    for (partition, minute_id), group in frame.group_by(
        "partition", "minute_id", maintain_order=True
    ):
        counts = {f"counts.{user}": n for user, n in group.select("user_id", "count").iter_rows()}
        statements.append(
            _statement(
                user_minute_id(minute_id, partition),
                guard,
                {"$inc": counts, "$max": guard.marks_set, "$setOnInsert": {"minute_id": minute_id}},
            )
        )
    return statements


def activity_bin(total: int) -> str:
    """Histogram bin of a user's interaction count: b<k> holds totals in [2^k, 2^(k+1))."""
    return f"b{total.bit_length() - 1}"


def user_bin_changes(before: dict[str, int], users: pl.DataFrame) -> dict[str, int]:
    """`$inc` of the users-by-activity histogram when `users` get this batch's counts.

    `before` holds each user's total before this batch (absent: a new user). Users only move
    up, and only across powers of two, so most batches change few bins.
    """
    changes: dict[str, int] = {}
    for user_id, added in users.select("user_id", "total").iter_rows():
        old = before.get(user_id, 0)
        if old:
            old_bin = activity_bin(old)
            changes[old_bin] = changes.get(old_bin, 0) - 1
        new_bin = activity_bin(old + added)
        changes[new_bin] = changes.get(new_bin, 0) + 1
    return {f"user_bins.{name}": delta for name, delta in changes.items() if delta}


def dead_field_counts(dead: pl.DataFrame) -> dict[str, int]:
    """Rejected records by the field their reason names (`record`: rejected whole), as keys
    MongoDB accepts (no '.', no leading '$')."""
    counts: dict[str, int] = {}
    for field in dead.get_column("field").to_list():
        key = (field or WHOLE_RECORD).replace(".", "~").lstrip("$") or WHOLE_RECORD
        counts[key] = counts.get(key, 0) + 1
    return counts


def dead_letter_statements(
    dead: pl.DataFrame, topic: str, batch_id: str, received_at: datetime, keep_bytes: int
) -> list[Statement]:
    """One document per rejected record, keyed by topic:partition:offset so replays add none.
    What a record keeps is bounded (pulse/ingest/validate.py:kept): a batch of megabyte
    records makes dead letters of a kilobyte each."""
    statements = []
    for row in dead.iter_rows(named=True):
        record = kept(row["value"], row["field"], keep_bytes)
        key = row["key"]
        statements.append(
            {
                "q": {"_id": record_id(topic, row["partition"], row["offset"])},
                "u": {
                    "$setOnInsert": {
                        "topic": topic,
                        "partition": row["partition"],
                        "offset": row["offset"],
                        "kafka_ts": row["kafka_ts"],
                        "kafka_timestamp": kafka_time(row["kafka_ts"]),
                        "key": key[:KEY_KEPT_BYTES] if key is not None else None,
                        "raw": record.value,
                        "size": record.size,
                        "sha256": record.sha256,
                        "truncated": record.truncated,
                        "reason": row["reason"],
                        "field": row["field"] or None,
                        "batch_id": batch_id,
                        "received_at": received_at,
                        "status": "dead",
                    }
                },
                "upsert": True,
            }
        )
    return statements


def kafka_time(stamp_ms: int) -> datetime | None:
    """A Kafka timestamp as a time, or None where a producer set one no datetime can hold."""
    if not EARLIEST_MS <= stamp_ms <= LATEST_MS:
        return None
    return datetime.fromtimestamp(stamp_ms / 1000, UTC)
