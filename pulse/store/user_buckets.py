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

A user's sessions (pulse/ingest/sessions.py) are not additive: they go on from the sessions
the bucket holds. So the `sessions` step reads the buckets first (`plan_sessions`), the
minutes' session figures are written from that read, and the `users` step writes its first
round from the same read: a replay finds a bucket that holds the flush and leaves it out of
both. With producers keying events by user, that read is the one every user is written
from. When another consumer wrote one of the users in between, the user's sessions go on
from the new read; the minutes' figures keep the first (docs/consumer.md, "Sessions").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.ingest.aggregate import type_column
from pulse.ingest.sessions import MinuteChanges, UserSessions, advance, nonzero
from pulse.store.client import Document
from pulse.store.contended import Writer, write_in_rounds
from pulse.store.reads import by_ids
from pulse.store.schema import BUCKET_USERS, USER_BUCKETS, ids_by_bucket, user_bucket, user_path
from pulse.store.statements import Guard, Statement
from pulse.store.user_figures import UserFigures, pack, stored_total, unpack
from pulse.store.writes import UpsertResult, holds


@dataclass
class UsersWritten:
    """What an entity flush did to the user buckets."""

    totals_before: dict[str, int] = field(default_factory=dict)
    """Each user's total before the flush (0: a new user)."""
    result: UpsertResult = field(default_factory=UpsertResult)

    @property
    def new_users(self) -> int:
        return sum(1 for total in self.totals_before.values() if total == 0)


@dataclass(frozen=True)
class Flushed:
    """A flush's events of one user: their figures, and their times for its sessions."""

    figures: UserFigures
    times: list[int]


Rows = dict[str, dict[str, Flushed]]
"""A flush's users by the bucket each lives in."""


@dataclass
class SessionsPlanned:
    """The sessions of a flush's users, from the buckets as read before any user is written
    (the `sessions` step); the `users` step writes the first round from this same read."""

    rows: Rows
    """The flush's users, by bucket."""
    stored: dict[str, Document]
    """The buckets as read, by `_id` (none for a bucket not written yet)."""
    sessions: dict[str, UserSessions]
    """Each user's sessions after the flush (users of buckets that hold it already: none)."""
    changes: MinuteChanges
    """What the flush changes of each minute's session figures."""


def flush_figures(users: pl.DataFrame, types: tuple[str, ...]) -> dict[str, Flushed]:
    """A flush's figures per user, from its users frame (pulse/ingest/aggregate.py)."""
    columns = [type_column(kind) for kind in types if type_column(kind) in users.columns]
    frame = users.select(
        "user_id",
        "total",
        pl.col("first_seen").dt.epoch("ms"),
        pl.col("last_seen").dt.epoch("ms"),
        "times",
        *columns,
    )
    names = [column.removeprefix("types.") for column in columns]
    return {
        user: Flushed(UserFigures(total, first, last, dict(zip(names, counts, strict=True))), times)
        for user, total, first, last, times, *counts in frame.iter_rows()
    }


def by_bucket(users: pl.DataFrame, buckets: int, types: tuple[str, ...]) -> Rows:
    """A flush's figures per user, by the bucket each user lives in."""
    figures = flush_figures(users, types)
    grouped = ids_by_bucket(figures, lambda user: user_bucket(user, buckets))
    return {bucket: {user: figures[user] for user in ids} for bucket, ids in grouped.items()}


def plan_sessions(
    db: Database[Document], rows: Rows, guard: Guard, idle_ms: int
) -> SessionsPlanned:
    """Read the flush's buckets and build its users' sessions from what they hold.

    The minutes' session figures are written from this plan before any user is (they are
    not additive: a replay could not tell them from the users once written). A bucket that
    holds the flush already is left out: the minutes took the flush before it did.
    """
    stored = _read(db, rows, guard)
    planned = SessionsPlanned(rows, stored, {}, {})
    for bucket, added in sorted(rows.items()):
        doc = stored.get(bucket)
        if holds(doc, guard):
            continue
        held: dict[str, Any] = (doc or {}).get(BUCKET_USERS, {})
        for user, flushed in added.items():
            before = unpack(held[user]).sessions if user in held else UserSessions()
            planned.sessions[user] = advance(before, flushed.times, idle_ms, planned.changes)
    planned.changes = nonzero(planned.changes)
    return planned


def plan(
    bucket: str,
    added: dict[str, Flushed],
    stored: Document | None,
    guard: Guard,
    sessions: Callable[[str, UserSessions], UserSessions],
) -> Statement:
    """The write of `added` (a flush's figures, by user) into `bucket` as `stored` holds it;
    `sessions` gives a user's sessions after the flush from those before."""
    held: dict[str, Any] = (stored or {}).get(BUCKET_USERS, {})
    expected: dict[str, Any] = {}
    figures: dict[str, str] = {}
    for user, flushed in added.items():
        path = user_path(user)
        before = held.get(user)
        if before is None:
            expected[path] = {"$exists": False}
            figures[path] = pack(flushed.figures.with_sessions(sessions(user, UserSessions())))
        else:
            # Older buckets hold a document per user: its total changes with every event.
            expected[path if isinstance(before, str) else f"{path}.total"] = (
                before if isinstance(before, str) else stored_total(before)
            )
            held_figures = unpack(before)
            after = held_figures.plus(flushed.figures, sessions(user, held_figures.sessions))
            figures[path] = pack(after)
    return {
        "q": {"_id": bucket, **expected, **guard.filter},
        "u": {"$set": figures, "$max": guard.marks_set},
        "upsert": True,
    }


def write_users(
    db: Database[Document], planned: SessionsPlanned, guard: Guard, idle_ms: int, writer: Writer
) -> UsersWritten:
    """Write a flush's users into their buckets: first as `planned` read them, then each
    bucket another flush changed meanwhile from a read of its own."""
    rows = planned.rows
    done = UsersWritten()
    rounds = 0

    def write_round(chosen: list[str]) -> set[str]:
        nonlocal rounds
        rounds += 1
        if rounds == 1:
            stored, sessions = planned.stored, planned.sessions
        else:
            stored, sessions = _read(db, chosen, guard), {}
        chosen_rows = {bucket: rows[bucket] for bucket in chosen}
        return _write_round(chosen_rows, stored, sessions, idle_ms, guard, writer, done)

    write_in_rounds(USER_BUCKETS, list(rows), write_round)
    return done


def _read(db: Database[Document], buckets: Iterable[str], guard: Guard) -> dict[str, Document]:
    """The buckets as stored, by `_id`: their users and the flush's watermark."""
    projection = {BUCKET_USERS: 1, guard.key[0]: 1}
    return {doc["_id"]: doc for doc in by_ids(db, USER_BUCKETS, sorted(buckets), projection)}


def _write_round(
    rows: Rows,
    stored: dict[str, Document],
    planned: dict[str, UserSessions],
    idle_ms: int,
    guard: Guard,
    writer: Writer,
    done: UsersWritten,
) -> set[str]:
    """Write the buckets not holding the flush yet, as `stored` holds them; adds what
    happened to `done` and returns the buckets whose write found another value."""
    times = {user: flushed.times for added in rows.values() for user, flushed in added.items()}

    def sessions_after(user: str, before: UserSessions) -> UserSessions:
        # Planned from the same read, unless another flush changed the bucket since: then the
        # sessions go on from what it holds now (the minutes' figures were written already).
        if user in planned:
            return planned[user]
        return advance(before, times[user], idle_ms, {})

    statements: dict[str, Statement] = {}
    for bucket, added in sorted(rows.items()):
        doc = stored.get(bucket)
        held: dict[str, Any] = (doc or {}).get(BUCKET_USERS, {})
        if holds(doc, guard):
            # A replay: the bucket holds the flush's own figures already.
            for user, flushed in added.items():
                after = stored_total(held[user]) if user in held else flushed.figures.total
                done.totals_before[user] = after - flushed.figures.total
            done.result.already_applied += 1
        else:
            statements[bucket] = plan(bucket, added, doc, guard, sessions_after)
    result = writer(USER_BUCKETS, list(statements.values()))
    refused = set(result.refused_ids)
    done.result.add_writes(result)
    for bucket in statements.keys() - refused:
        held = (stored.get(bucket) or {}).get(BUCKET_USERS, {})
        for user in rows[bucket]:
            done.totals_before[user] = stored_total(held[user]) if user in held else 0
    return refused
