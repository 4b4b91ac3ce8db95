"""Users in buckets, one string a user: figures and new users exact however flushes of other
partitions interleave, replays add nothing, older buckets are read and rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
from pymongo.database import Database

from pulse.ingest.sessions import Session, UserSessions
from pulse.store import reads, writes
from pulse.store.client import Document
from pulse.store.contended import Writer
from pulse.store.schema import USER_BUCKETS, user_bucket
from pulse.store.statements import Guard, Statement
from pulse.store.user_buckets import (
    Flushed,
    UsersWritten,
    by_bucket,
    plan,
    plan_sessions,
    write_users,
)
from pulse.store.user_figures import UserFigures, pack
from pulse.store.writes import UpsertResult, upsert_guarded
from tests.fakes import MemoryDatabase
from tests.flushes import as_database, entity_frame, flush_guard, plain_writer

TYPES = ("view", "click")
BUCKETS = 4
SEEN = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SEEN_MS = int(SEEN.timestamp() * 1000)


def _users(totals: dict[str, int], seen: datetime = SEEN) -> pl.DataFrame:
    return entity_frame("user_id", totals, seen)


IDLE_MS = 30 * 60_000


def _write(
    db: Database[Document], users: pl.DataFrame, guard: Guard, writer: Writer
) -> UsersWritten:
    """The `sessions` step's read and plan, then the `users` step."""
    planned = plan_sessions(db, by_bucket(users, BUCKETS, TYPES), guard, IDLE_MS)
    return write_users(db, planned, guard, IDLE_MS, writer)


def _shared(n: int) -> list[str]:
    return [f"u{k}" for k in range(60) if user_bucket(f"u{k}", BUCKETS) == "b0"][:n]


def test_each_user_is_set_from_its_value_as_read_and_guarded_by_it() -> None:
    held = pack(UserFigures(5, 0, SEEN_MS, {"click": 5}))
    stored: Document = {"_id": "b1", "u": {"u1": held}}
    added = {
        "u1": Flushed(UserFigures(2, SEEN_MS, SEEN_MS, {"view": 2}), [SEEN_MS] * 2),
        "u2": Flushed(UserFigures(1, SEEN_MS, SEEN_MS, {"view": 1}), [SEEN_MS]),
    }
    guard = flush_guard(0, 0, 9)
    one = UserSessions(1, Session(SEEN_MS, SEEN_MS, 1))
    statement = plan("b1", added, stored, guard, lambda user, before: one)
    assert statement["q"] == {
        "_id": "b1",
        "u.u1": held,
        "u.u2": {"$exists": False},
        **guard.filter,
    }
    assert statement["u"]["$set"] == {
        "u.u1": pack(UserFigures(7, 0, SEEN_MS, {"click": 5, "view": 2}, one)),
        "u.u2": pack(added["u2"].figures.with_sessions(one)),
    }
    assert statement["u"]["$max"] == {"ws.t.p0": 9}


def test_flushes_of_two_partitions_writing_the_same_users_count_each_event_once() -> None:
    # A producer that does not key by user: the same users arrive on two partitions.
    db = as_database(MemoryDatabase())
    shared = _shared(3)
    interleaved: list[UsersWritten] = []

    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        if not interleaved:  # the other flush writes between this one's read and its write
            other = _users(dict.fromkeys(shared[:2], 1))
            interleaved.append(_write(db, other, flush_guard(1, 0, 4), plain_writer(db)))
        return upsert_guarded(db, collection, statements)

    mine = _write(db, _users(dict.fromkeys(shared, 2)), flush_guard(0, 0, 9), writer)
    (other,) = interleaved
    assert other.new_users == 2
    assert mine.new_users == 1  # its first write was refused; the re-read held two of three
    assert mine.totals_before == {shared[0]: 1, shared[1]: 1, shared[2]: 0}
    assert reads.user_totals(db) == {shared[0]: 3, shared[1]: 3, shared[2]: 2}


def test_a_replayed_flush_knows_the_totals_before_it_and_adds_nothing() -> None:
    db = as_database(MemoryDatabase())
    _write(db, _users({"u3": 1}), flush_guard(0, 0, 0), plain_writer(db))
    guard, users = flush_guard(0, 1, 9), _users({"u1": 2, "u2": 1, "u3": 4})
    once = _write(db, users, guard, plain_writer(db))
    again = _write(db, users, guard, plain_writer(db))
    assert once.totals_before == again.totals_before == {"u1": 0, "u2": 0, "u3": 1}
    assert once.new_users == again.new_users == 2
    assert reads.user_totals(db) == {"u1": 2, "u2": 1, "u3": 5}
    assert again.result.upserted + again.result.modified == 0
    assert again.result.already_applied == once.result.upserted + once.result.modified


def test_a_user_an_older_bucket_holds_as_a_document_is_counted_on_and_rewritten() -> None:
    memory = MemoryDatabase()
    bucket = user_bucket("u1", BUCKETS)
    older = {"total": 3, "types": {"click": 3}, "first_seen": SEEN, "last_seen": SEEN}
    memory[USER_BUCKETS].insert_one({"_id": bucket, "u": {"u1": older}})
    db = as_database(memory)
    writes.settle_user_buckets(db, BUCKETS)
    later = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)
    written = _write(db, _users({"u1": 2}, later), flush_guard(0, 0, 9), plain_writer(db))
    assert written.totals_before == {"u1": 3}
    (user,) = reads.users_by_ids(db, ["u1"])
    assert user == {
        "_id": "u1",
        "total": 5,
        "types": {"click": 3, "view": 2},
        "first_seen": SEEN,
        "last_seen": later,
        "sessions": 1,  # its first since Pulse keeps sessions
    }
    stored = memory[USER_BUCKETS].find_one({"_id": bucket})
    assert stored is not None and isinstance(stored["u"]["u1"], str)
