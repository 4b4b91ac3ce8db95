"""Retention removes what is past its time by `_id`, keeps what exactly-once needs, and a pass
killed anywhere and run again ends where one whole pass ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, cast

import pytest
from pymongo.database import Database

from pulse.config import RetentionSettings
from pulse.ingest.active_users import DAYS_KEPT, day_keys
from pulse.store import reads, retention, writes
from pulse.store.client import Document
from pulse.store.schema import (
    ALERTS,
    DAY,
    DAY_SKETCHES,
    DEAD_LETTERS,
    ENTITY_BATCHES,
    HOUR,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEDGER,
    LEGACY_ITEM_MINUTES,
    MINUTE,
    MINUTE_LEADERS,
    MINUTE_SKETCHES,
    MINUTES,
    OFFSETS,
    PERIODS,
    SESSIONS,
    SESSIONS_ALL,
    TIMELINE,
    USER_MINUTES,
    item_hour_id,
    item_minute_id,
    minute_id,
    minute_of_id,
    offsets_id,
    period_id,
    period_key,
    user_minute_id,
)
from tests.fakes import MemoryDatabase

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
KEEP = RetentionSettings(ledger_hours=2, dead_letter_days=1, alert_days=1, minute_days=1)
ITEM_BUCKETS = 300
"""More item x minute buckets a minute than databases before the setting had (256), so a pass
that ignored the database's own number would leave i17's (bucket 264)."""
HOURS = 30
"""History seeded: a ledger entry, a dead letter and an alert every 10 minutes, item and
user minutes every minute, for this many hours before NOW."""


def _seed(memory: MemoryDatabase) -> None:
    db = cast(Database[Document], memory)
    memory[OFFSETS].insert_one({"_id": offsets_id("t", 1), "partition": 1, ENTITY_BATCHES: []})
    writes.settle_item_buckets(db, ITEM_BUCKETS)
    for n in range(HOURS * 60):
        moment = NOW - timedelta(minutes=n)
        minute = minute_id(moment)
        for item in ("i1", "i17"):
            memory[ITEM_MINUTES].insert_one({"_id": item_minute_id(item, minute, ITEM_BUCKETS)})
        for partition in (0, 1):
            memory[USER_MINUTES].insert_one({"_id": user_minute_id(minute, partition)})
        memory[MINUTE_SKETCHES].insert_one({"_id": minute})
        memory[MINUTE_LEADERS].insert_one({"_id": minute})
        memory[MINUTES].insert_one({"_id": minute})
        memory[SESSIONS].insert_one({"_id": period_id(MINUTE, moment)})
        if n % 10:
            continue
        for collection, status in ((LEDGER, "applied"), (DEAD_LETTERS, "dead"), (ALERTS, None)):
            doc_id = f"{collection}-{n}"
            writes.file_in_timeline(db, collection, moment, [doc_id])
            memory[collection].insert_one(
                {"_id": doc_id, "status": status, "started_at": moment, "fired_at": moment}
            )


def _ids(memory: MemoryDatabase, collection: str) -> set[Any]:
    return set(memory[collection].docs)


@cache
def _expected_after_pass() -> dict[str, set[str]]:
    memory = MemoryDatabase()
    _seed(memory)
    retention.maintain(cast(Database[Document], memory), KEEP, NOW)
    return {c: _ids(memory, c) for c in retention.TARGETS}


def test_a_pass_removes_what_is_past_each_retention_and_nothing_younger() -> None:
    memory = MemoryDatabase()
    _seed(memory)
    passes = retention.maintain(cast(Database[Document], memory), KEEP, NOW)

    removed = {pruned.target: pruned.removed for pruned in passes}
    # Ledger entries every 10 minutes, kept 2 h: 12 younger than the cutoff, 13 with NOW's.
    assert _ids(memory, LEDGER) == {f"{LEDGER}-{n}" for n in range(0, 121, 10)}
    assert removed[LEDGER] == HOURS * 6 - 13
    assert _ids(memory, DEAD_LETTERS) == {f"{DEAD_LETTERS}-{n}" for n in range(0, 24 * 60 + 1, 10)}
    cutoff = minute_id(NOW - timedelta(days=1))
    assert all(minute_of_id(doc_id) >= cutoff for doc_id in _ids(memory, ITEM_MINUTES))
    assert len(_ids(memory, ITEM_MINUTES)) == 2 * (24 * 60 + 1)
    assert len(_ids(memory, USER_MINUTES)) == 2 * (24 * 60 + 1)
    assert min(_ids(memory, MINUTE_SKETCHES)) == min(_ids(memory, MINUTE_LEADERS)) == cutoff
    assert min(_ids(memory, MINUTES)) == cutoff
    assert len(_ids(memory, MINUTES)) == 24 * 60 + 1
    assert _ids(memory, SESSIONS) == {f"{MINUTE}|{minute}" for minute in _ids(memory, MINUTES)}
    # The timeline of what was removed went with it.
    assert not any(
        str(doc_id).startswith(f"{LEDGER}|")
        and str(doc_id).split("|")[1] < minute_id(NOW - timedelta(hours=2))
        for doc_id in _ids(memory, TIMELINE)
    )


def test_a_second_pass_reads_only_the_minutes_since_the_first() -> None:
    memory = MemoryDatabase()
    _seed(memory)
    db = cast(Database[Document], memory)
    retention.maintain(db, KEEP, NOW)
    again = retention.maintain(db, KEEP, NOW + timedelta(minutes=10))
    by_target = {pruned.target: pruned for pruned in again}
    assert by_target[LEDGER].removed == 1
    assert by_target[ITEM_MINUTES].removed == 2 * 10
    assert by_target[ITEM_MINUTES].through == minute_id(
        NOW + timedelta(minutes=10) - timedelta(days=1, minutes=1)
    )


def test_per_item_minute_documents_of_before_buckets_go_a_minute_retention_after_first_seen() -> (
    None
):
    memory = MemoryDatabase()
    _seed(memory)
    db = cast(Database[Document], memory)
    memory[LEGACY_ITEM_MINUTES].insert_one({"_id": f"i1|{minute_id(NOW)}", "total": 3})
    first = {p.target: p for p in retention.maintain(db, KEEP, NOW)}
    assert first[LEGACY_ITEM_MINUTES].removed == 0
    assert LEGACY_ITEM_MINUTES in memory.list_collection_names()
    soon = retention.maintain(db, KEEP, NOW + timedelta(days=KEEP.minute_days) / 2)
    assert LEGACY_ITEM_MINUTES in memory.list_collection_names() and soon
    later = NOW + timedelta(days=KEEP.minute_days)
    last = {p.target: p for p in retention.maintain(db, KEEP, later)}
    assert last[LEGACY_ITEM_MINUTES].removed == 1
    assert LEGACY_ITEM_MINUTES not in memory.list_collection_names()
    after = retention.maintain(db, KEEP, later + timedelta(minutes=1))
    assert LEGACY_ITEM_MINUTES not in {p.target for p in after}


def test_unfinished_entries_and_entries_a_flush_will_reread_are_kept_at_any_age() -> None:
    memory = MemoryDatabase()
    _seed(memory)
    db = cast(Database[Document], memory)
    failed, waiting = f"{LEDGER}-1000", f"{LEDGER}-1200"
    memory[LEDGER].docs[failed]["status"] = "failed"
    memory[OFFSETS].docs[offsets_id("t", 1)][ENTITY_BATCHES] = [waiting]

    first = {p.target: p for p in retention.maintain(db, KEEP, NOW)}
    assert {failed, waiting} <= _ids(memory, LEDGER)
    assert first[LEDGER].kept == 2

    memory[LEDGER].docs[failed]["status"] = "applied"  # resolved, by a retry
    memory[OFFSETS].docs[offsets_id("t", 1)][ENTITY_BATCHES] = []  # flushed
    later = NOW + timedelta(hours=3)
    retention.maintain(db, KEEP, later)
    assert not {failed, waiting} & _ids(memory, LEDGER)


class _KilledError(Exception):
    pass


@cache
def _deletes_of_one_pass() -> int:
    memory = MemoryDatabase()
    _seed(memory)
    count = [0]
    for name in [*retention.TARGETS, TIMELINE]:
        original = memory[name].delete_many

        def counting(query: Document, original: Any = original) -> Any:
            count[0] += 1
            return original(query)

        memory[name].delete_many = counting  # type: ignore[method-assign]
    retention.maintain(cast(Database[Document], memory), KEEP, NOW)
    return count[0]


@pytest.mark.parametrize("share_done", [0.0, 0.1, 0.35, 0.6, 0.97])
def test_a_pass_killed_anywhere_and_run_again_ends_as_one_whole_pass(share_done: float) -> None:
    memory = MemoryDatabase()
    _seed(memory)
    db = cast(Database[Document], memory)
    left = [int(share_done * _deletes_of_one_pass())]
    originals = {name: memory[name].delete_many for name in [*retention.TARGETS, TIMELINE]}

    def killing(name: str) -> Any:
        def delete_many(query: Document) -> Any:
            left[0] -= 1
            if left[0] < 0:
                raise _KilledError(name)
            return originals[name](query)

        return delete_many

    for name in originals:
        memory[name].delete_many = killing(name)  # type: ignore[method-assign]
    with pytest.raises(_KilledError):
        retention.maintain(db, KEEP, NOW)
    for name, original in originals.items():
        memory[name].delete_many = original  # type: ignore[method-assign]

    retention.maintain(db, KEEP, NOW)
    assert {c: _ids(memory, c) for c in retention.TARGETS} == _expected_after_pass()


def test_recent_reads_go_through_the_timeline_newest_first() -> None:
    memory = MemoryDatabase()
    db = cast(Database[Document], memory)
    for n in range(5):
        moment = NOW - timedelta(minutes=n)
        writes.file_in_timeline(db, LEDGER, moment, [f"b{n}a", f"b{n}b"])
    ids = reads.timeline(db, LEDGER, NOW - timedelta(hours=1), NOW, 3)
    assert ids == ["b0b", "b0a", "b1b"]
    assert reads.timeline(db, LEDGER, NOW - timedelta(minutes=1), NOW) == [
        "b0b",
        "b0a",
        "b1b",
        "b1a",
    ]


def test_hourly_figures_go_an_hour_retention_after_their_hour() -> None:
    memory = MemoryDatabase()
    db = cast(Database[Document], memory)
    keep = KEEP.model_copy(update={"hour_days": 8})
    writes.settle_item_buckets(db, ITEM_BUCKETS)
    retention.start_marks(db, NOW - timedelta(days=10), keep)
    hours = [NOW - timedelta(hours=n) for n in range(10 * 24)]
    days = {period_id(DAY, hour) for hour in hours}  # kept for good
    for doc_id in [SESSIONS_ALL, *days]:
        memory[SESSIONS].insert_one({"_id": doc_id})
    for hour in hours:
        memory[PERIODS].insert_one({"_id": period_id(HOUR, hour)})
        memory[SESSIONS].insert_one({"_id": period_id(HOUR, hour)})
        for item in ("i1", "i17"):
            memory[ITEM_HOURS].insert_one({"_id": item_hour_id(item, hour, ITEM_BUCKETS)})
    # A pass reaches a week past its mark (LATE_HOURS before the database began): two passes.
    for _ in range(2):
        retention.maintain(db, keep, NOW)
    kept = [hour for hour in hours if hour >= NOW - timedelta(days=8)]
    assert _ids(memory, PERIODS) == {period_id(HOUR, hour) for hour in kept}
    assert _ids(memory, SESSIONS) == {period_id(HOUR, hour) for hour in kept} | days | {
        SESSIONS_ALL
    }
    assert _ids(memory, ITEM_HOURS) == {
        item_hour_id(item, hour, ITEM_BUCKETS) for hour in kept for item in ("i1", "i17")
    }


def test_daily_sketches_are_kept_a_month_back_from_today() -> None:
    memory = MemoryDatabase()
    db = cast(Database[Document], memory)
    retention.start_marks(db, NOW - timedelta(days=40), KEEP)
    days = [period_key(DAY, NOW - timedelta(days=n)) for n in range(40)]
    for day in days:
        memory[DAY_SKETCHES].insert_one({"_id": day, "users_hll": {"r1": 1}})
    # A pass reaches a week past its mark (LATE_HOURS before the database began): seven passes.
    for _ in range(7):
        retention.maintain(db, KEEP, NOW)
    assert _ids(memory, DAY_SKETCHES) == set(day_keys(NOW.date(), DAYS_KEPT))
    assert len(_ids(memory, DAY_SKETCHES)) == DAYS_KEPT
