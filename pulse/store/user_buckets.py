"""Per-user figures in bucket documents, one string a user, written from the bucket as read.

An entity flush reads the buckets of its users and sets each user's figures after the flush
(as read, plus the flush's own; pulse/store/user_figures.py), guarded by what it read of
that user:

    filter: {_id: 'b<n>', u.<user>: <as read> (or {$exists: false}) for each user it sets,
             <the flush's guard>}
    update: {$set: {u.<user>: <figures after>}, $max: watermarks}

When producers key events by user, only the consumer owning a user's partition writes that
user, and the guard never refuses. When they do not, two consumers can write the same user
at once: the second finds another value, matches nothing and collides with the `_id`; the
bucket is read again and either counted as already holding the flush (its watermarks) or
written again from the new read (pulse/store/contended.py). So each user's figures stay
exact however flushes interleave, and each user's total before the flush (new users, the
activity histogram, the leader board) comes from the read the write needs anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.ingest.aggregate import type_column
from pulse.store.client import Document
from pulse.store.contended import Writer, write_in_rounds
from pulse.store.reads import by_ids
from pulse.store.schema import BUCKET_USERS, USER_BUCKETS, ids_by_bucket, user_bucket, user_path
from pulse.store.statements import Guard, Statement
from pulse.store.user_figures import UserFigures, pack, stored_total, unpack
from pulse.store.writes import UpsertResult, watermark


@dataclass
class UsersWritten:
    """What an entity flush did to the user buckets."""

    totals_before: dict[str, int] = field(default_factory=dict)
    """Each user's total before the flush (0: a new user)."""
    result: UpsertResult = field(default_factory=UpsertResult)

    @property
    def new_users(self) -> int:
        return sum(1 for total in self.totals_before.values() if total == 0)


def flush_figures(users: pl.DataFrame, types: tuple[str, ...]) -> dict[str, UserFigures]:
    """A flush's figures per user, from its users frame (pulse/ingest/aggregate.py)."""
    columns = [type_column(kind) for kind in types if type_column(kind) in users.columns]
    frame = users.select(
        "user_id",
        "total",
        pl.col("first_seen").dt.epoch("ms"),
        pl.col("last_seen").dt.epoch("ms"),
        *columns,
    )
    names = [column.removeprefix("types.") for column in columns]
    return {
        user: UserFigures(total, first, last, dict(zip(names, counts, strict=True)))
        for user, total, first, last, *counts in frame.iter_rows()
    }


def by_bucket(
    users: pl.DataFrame, buckets: int, types: tuple[str, ...]
) -> dict[str, dict[str, UserFigures]]:
    """A flush's figures per user, by the bucket each user lives in."""
    figures = flush_figures(users, types)
    grouped = ids_by_bucket(figures, lambda user: user_bucket(user, buckets))
    return {bucket: {user: figures[user] for user in ids} for bucket, ids in grouped.items()}


def plan(
    bucket: str, added: dict[str, UserFigures], stored: Document | None, guard: Guard
) -> Statement:
    """The write of `added` (a flush's figures, by user) into `bucket` as `stored` holds it."""
    held: dict[str, Any] = (stored or {}).get(BUCKET_USERS, {})
    expected: dict[str, Any] = {}
    figures: dict[str, str] = {}
    for user, flushed in added.items():
        path = user_path(user)
        before = held.get(user)
        if before is None:
            expected[path] = {"$exists": False}
            figures[path] = pack(flushed)
        else:
            # Older buckets hold a document per user: its total changes with every event.
            expected[path if isinstance(before, str) else f"{path}.total"] = (
                before if isinstance(before, str) else stored_total(before)
            )
            figures[path] = pack(unpack(before).plus(flushed))
    return {
        "q": {"_id": bucket, **expected, **guard.filter},
        "u": {"$set": figures, "$max": guard.marks_set},
        "upsert": True,
    }


def write_users(
    db: Database[Document],
    users: pl.DataFrame,
    buckets: int,
    guard: Guard,
    types: tuple[str, ...],
    writer: Writer,
) -> UsersWritten:
    """Write a flush's users (one row each) into their buckets, reading each bucket first."""
    rows = by_bucket(users, buckets, types)
    done = UsersWritten()
    write_in_rounds(
        USER_BUCKETS,
        list(rows),
        lambda chosen: _write_round(
            db, {bucket: rows[bucket] for bucket in chosen}, guard, writer, done
        ),
    )
    return done


def _write_round(
    db: Database[Document],
    rows: dict[str, dict[str, UserFigures]],
    guard: Guard,
    writer: Writer,
    done: UsersWritten,
) -> set[str]:
    """Read the buckets, write those not holding the flush yet; adds what happened to `done`
    and returns the buckets whose write found another value."""
    key, last = guard.key
    stored = {
        doc["_id"]: doc for doc in by_ids(db, USER_BUCKETS, sorted(rows), {BUCKET_USERS: 1, key: 1})
    }
    statements: dict[str, Statement] = {}
    for bucket, added in sorted(rows.items()):
        doc = stored.get(bucket)
        held: dict[str, Any] = (doc or {}).get(BUCKET_USERS, {})
        if doc is not None and watermark(doc, key) >= last:
            # A replay: the bucket holds the flush's own figures already.
            for user, flushed in added.items():
                after = stored_total(held[user]) if user in held else flushed.total
                done.totals_before[user] = after - flushed.total
            done.result.already_applied += 1
        else:
            statements[bucket] = plan(bucket, added, doc, guard)
    result = writer(USER_BUCKETS, list(statements.values()))
    refused = set(result.refused_ids)
    done.result.add_writes(result)
    for bucket in statements.keys() - refused:
        held = (stored.get(bucket) or {}).get(BUCKET_USERS, {})
        for user in rows[bucket]:
            done.totals_before[user] = stored_total(held[user]) if user in held else 0
    return refused
