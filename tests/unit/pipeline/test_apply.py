"""Writing batches, in-process against the in-memory database: totals stay exact when the
write stops after any step and the batch is applied again (bytewax-style crash tests)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import orjson
import polars as pl
import pytest
from pymongo.database import Database

from pulse.config import SettingsError
from pulse.ingest.batch import MicroBatch, OffsetRange
from pulse.ingest.sessions import SessionFigures
from pulse.ingest.validate import ValidationRules
from pulse.pipeline.apply import COUNT_STEPS, ENTITY_STEPS, STEPS, BatchWriter, StaleBatchError
from pulse.pipeline.entities import backlog
from pulse.store import active_users, migrations, reads, session_figures, writes
from pulse.store.client import Document
from pulse.store.reads import entity_progress, stored_offsets
from pulse.store.schema import (
    DAY,
    DAY_SKETCHES,
    DEAD_LETTERS,
    HOUR,
    ITEM_MINUTES,
    LEDGER,
    LEGACY_USERS,
    MINUTE,
    MINUTE_SKETCHES,
    MINUTES,
    PERIODS,
    TOTALS,
    TOTALS_ID,
    USER_BUCKETS,
    USER_MINUTES,
    Entity,
)
from tests import session_truth
from tests.fakes import MemoryDatabase, apply_batch, apply_now, flush

TOPIC = "t"
TYPES = ("view", "click", "add_to_cart", "purchase")
RULES = ValidationRules(
    interaction_types=TYPES, max_record_bytes=1_024, max_age_ms=3_600_000, max_lead_ms=60_000
)
KAFKA_TS = 1_795_737_600_000


class CrashError(RuntimeError):
    pass


def _batch(
    partition: int, first: int, n: int, seed: int, bad_every: int = 0, shift_ms: int = 0
) -> MicroBatch:
    rng = random.Random(seed)
    values = []
    for offset in range(first, first + n):
        if bad_every and offset % bad_every == 0:
            values.append(b"not json")
            continue
        event = {
            "user_id": f"u{rng.randrange(20)}",
            "item_id": f"i{rng.randrange(5)}",
            "interaction_type": rng.choice(TYPES),
            "timestamp": KAFKA_TS + shift_ms - rng.randrange(180_000),
        }
        values.append(orjson.dumps(event))
    stamps = [KAFKA_TS + shift_ms] * n
    return MicroBatch.from_columns(
        TOPIC, [partition] * n, list(range(first, first + n)), stamps, [b"k"] * n, values
    )


def _db(memory: MemoryDatabase) -> Database[Document]:
    return cast("Database[Document]", memory)


def _truth(batches: list[MicroBatch]) -> dict[str, Any]:
    events = [orjson.loads(v) for b in batches for v in b.records["value"] if v[:1] == b"{"]
    events = [e for e in events if isinstance(e, dict)]
    by_user: dict[str, int] = {}
    for event in events:
        by_user[event["user_id"]] = by_user.get(event["user_id"], 0) + 1
    return {"events": len(events), "by_user": by_user}


def _totals(memory: MemoryDatabase) -> dict[str, Any]:
    doc = memory[TOTALS].find_one({"_id": TOTALS_ID}) or {}
    users = reads.user_totals(_db(memory))
    return {"events": doc.get("events"), "users": doc.get("users"), "by_user": users}


def test_applying_batches_counts_every_event_once() -> None:
    memory = MemoryDatabase()
    writer = BatchWriter(_db(memory), TOPIC, RULES)
    batches = [_batch(0, 0, 40, 1), _batch(1, 0, 40, 2), _batch(0, 40, 40, 3)]
    for batch in batches:
        apply_now(writer, batch)
    truth = _truth(batches)
    assert _totals(memory) == {
        "events": truth["events"],
        "users": len(truth["by_user"]),
        "by_user": truth["by_user"],
    }
    assert sum(reads.item_totals(_db(memory)).values()) == truth["events"]
    assert sum(d["total"] for d in memory[MINUTES].find()) == truth["events"]
    assert stored_offsets(_db(memory), TOPIC) == {0: 80, 1: 40}
    entries = list(memory[LEDGER].find())
    assert {e["status"] for e in entries} == {"applied"}
    for entry in entries:  # where the time and the documents went, per step and collection
        steps = ENTITY_STEPS if entry.get("kind") == writes.ENTITY_FLUSH else COUNT_STEPS
        assert set(entry["step_seconds"]) == set(steps[1:-1])  # all but the ledger's own
        assert sum(entry["docs"].values()) == entry["docs_written"] > 0
        if steps is ENTITY_STEPS:  # one bucket document per touched bucket, not per user
            assert 0 < entry["docs"][USER_BUCKETS] <= len(truth["by_user"])


def test_minutes_past_their_retention_get_no_documents_and_still_count_everywhere_else() -> None:
    memory = MemoryDatabase()
    # The batch's events are days old: past a retention of one day, within the hours'.
    writer = BatchWriter(_db(memory), TOPIC, RULES, minute_detail=timedelta(days=1))
    batch = _batch(0, 0, 60, 5)
    apply_now(writer, batch)
    events = _truth([batch])["events"]
    assert _totals(memory)["events"] == events
    assert sum(reads.item_totals(_db(memory)).values()) == events
    for period in (HOUR, DAY):
        sums = [d["total"] for d in memory[PERIODS].find() if d["_id"].startswith(period)]
        assert sum(sums) == events, period
    for collection in (MINUTES, ITEM_MINUTES, USER_MINUTES, MINUTE_SKETCHES):
        assert memory[collection].count_documents({}) == 0, collection


def test_applying_a_batch_twice_changes_nothing() -> None:
    memory = MemoryDatabase()
    writer = BatchWriter(_db(memory), TOPIC, RULES)
    batch = _batch(0, 0, 50, 4)
    apply_now(writer, batch)
    before = _totals(memory)
    report = apply_now(writer, batch)
    assert report.docs_written == 0 and report.already_applied > 0
    assert _totals(memory) == before


def test_counts_show_at_once_and_entities_after_the_flush_of_the_batches_waiting() -> None:
    memory = MemoryDatabase()
    writer = BatchWriter(_db(memory), TOPIC, RULES)
    batches = [_batch(0, 0, 40, 11), _batch(1, 0, 40, 12), _batch(0, 40, 40, 13)]
    reports = [apply_batch(writer, batch) for batch in batches]
    truth = _truth(batches)
    assert _totals(memory) == {"events": truth["events"], "users": None, "by_user": {}}
    waiting = entity_progress(_db(memory), TOPIC, [0, 1])
    owed, listed = backlog(waiting)
    assert owed == [OffsetRange(0, 0, 79), OffsetRange(1, 0, 39)]
    assert sorted(listed) == sorted(report.batch_id for report in reports)

    flushed = flush(writer, reports)
    assert flushed.batch_id == "t/entities/p0:0-79,p1:0-39"
    assert _totals(memory) == {
        "events": truth["events"],
        "users": len(truth["by_user"]),
        "by_user": truth["by_user"],
    }
    assert entity_progress(_db(memory), TOPIC, [0, 1]) == {0: (80, []), 1: (40, [])}
    again = flush(writer, reports)  # a replayed flush: every document holds it already
    assert again.docs_written == 0 and again.already_applied > 0
    assert _totals(memory)["by_user"] == truth["by_user"]


@pytest.mark.parametrize("step", STEPS)
def test_a_write_stopped_after_any_step_is_completed_exactly_by_the_next_attempt(
    step: str,
) -> None:
    memory = MemoryDatabase()
    batches = [_batch(0, 0, 60, 5, bad_every=7), _batch(0, 60, 60, 6, bad_every=7)]

    def crash(done: str) -> None:
        if done == step:
            raise CrashError(step)

    crashing = BatchWriter(_db(memory), TOPIC, RULES, after_step=crash)
    with pytest.raises(CrashError):
        apply_now(crashing, batches[0])
    writer = BatchWriter(_db(memory), TOPIC, RULES)
    for batch in batches:  # the retry of the first batch, then the next one
        apply_now(writer, batch)

    truth = _truth(batches)
    totals = _totals(memory)
    assert totals["events"] == truth["events"]
    assert totals["by_user"] == truth["by_user"]
    assert totals["users"] == len(truth["by_user"])
    dead = memory[TOTALS].find_one({"_id": TOTALS_ID}) or {}
    assert dead["dead_lettered"] == memory[DEAD_LETTERS].count_documents({}) == 18


def _sent(batches: list[MicroBatch]) -> pl.DataFrame:
    """The valid events of one-partition batches, in the order their partition holds them."""
    rows = [
        (event["user_id"], event["timestamp"], offset)
        for batch in batches
        for offset, value in zip(batch.records["offset"], batch.records["value"], strict=True)
        if value[:1] == b"{" and isinstance(event := orjson.loads(value), dict)
    ]
    return pl.DataFrame(rows, schema=["user_id", "timestamp", "order"], orient="row")


def _session_minutes(
    db: Database[Document], truth: dict[datetime, dict[str, int]]
) -> dict[datetime, dict[str, int]]:
    frame = session_figures.sessions_by_period(db, MINUTE, min(truth), max(truth))
    return {
        row.pop(MINUTE): {name: n for name, n in row.items() if n}
        for row in frame.iter_rows(named=True)
        if any(row[name] for name in session_truth.FIGURES)
    }


@pytest.mark.parametrize("step", ENTITY_STEPS)
def test_sessions_count_once_when_a_flush_stops_after_any_step(step: str) -> None:
    """Late events included: the batches' times are out of order within three minutes, and
    the second batch comes an idle time later, so every user's first sessions end."""
    db = _db(MemoryDatabase())
    writes.settle_user_buckets(db, 1_024)  # as opening a pipeline does: readers find users
    first = _batch(0, 0, 80, 11)
    later = _batch(0, 80, 80, 12, shift_ms=31 * 60_000)

    def crash(done: str) -> None:
        if done == step:
            raise CrashError(step)

    with pytest.raises(CrashError):
        apply_now(BatchWriter(db, TOPIC, RULES, after_step=crash), first)
    writer = BatchWriter(db, TOPIC, RULES)
    for batch in (first, later):
        apply_now(writer, batch)

    sent = _sent([first, later])
    idle = 30 * 60_000
    truth = session_truth.by_minute(sent, idle)
    assert _session_minutes(db, truth) == truth
    assert session_figures.all_sessions(db) == SessionFigures(**session_truth.overall(sent, idle))
    counts = {
        user["_id"]: user["sessions"]
        for user in reads.users_by_ids(db, sorted(set(sent["user_id"])))
    }
    assert counts == dict(session_truth.sessions(sent, idle).group_by("user_id").len().iter_rows())


def test_dead_letters_reach_the_dead_letter_topic_once_even_when_a_batch_is_replayed() -> None:
    memory = MemoryDatabase()
    sent: list[pl.DataFrame] = []
    writer = BatchWriter(_db(memory), TOPIC, RULES, dead_letter_sink=sent.append)
    batch = _batch(0, 0, 30, 7, bad_every=5)
    apply_now(writer, batch)
    apply_now(writer, batch)
    assert [frame.height for frame in sent] == [6]


@pytest.mark.parametrize(("step", "kind"), [("minutes", None), ("users", writes.ENTITY_FLUSH)])
def test_a_refused_write_marks_its_batch_or_flush_failed_with_the_reason(
    step: str, kind: str | None
) -> None:
    memory = MemoryDatabase()

    def refuse(done: str) -> None:
        if done == step:
            raise writes.WriteFailedError(f"{step}: write refused (code 2): bad")

    with pytest.raises(writes.WriteFailedError):
        apply_now(BatchWriter(_db(memory), TOPIC, RULES, after_step=refuse), _batch(0, 0, 10, 8))
    (entry,) = memory[LEDGER].find({"status": "failed"})
    assert entry.get("kind") == kind and "code 2" in entry["error"]
    (unfinished,) = writes.unfinished_batches(_db(memory), TOPIC, kinds=(kind,))
    assert unfinished["_id"] == entry["_id"]


def test_user_buckets_are_fixed_once_users_are_stored() -> None:
    memory = MemoryDatabase()
    assert writes.settle_user_buckets(_db(memory), 8) == 8
    assert writes.settle_user_buckets(_db(memory), 16) == 16  # no user yet: free to change
    writer = BatchWriter(_db(memory), TOPIC, RULES, user_buckets=16)
    batch = _batch(0, 0, 30, 14)
    apply_now(writer, batch)
    with pytest.raises(SettingsError, match=r"PULSE_MONGO_USER_BUCKETS=8.* 16 buckets"):
        writes.settle_user_buckets(_db(memory), 8)
    truth = _truth([batch])["by_user"]
    busiest = max(truth, key=lambda user: truth[user])
    (user,) = reads.users_by_ids(_db(memory), [busiest])
    assert (user["_id"], user["total"]) == (busiest, truth[busiest])
    assert reads.entity(_db(memory), Entity.USERS, "user_id", "nobody") is None


def test_item_buckets_are_fixed_once_written_and_every_reader_finds_them() -> None:
    memory = MemoryDatabase()
    db = _db(memory)
    assert writes.settle_item_buckets(db, 4) == 4
    assert writes.settle_item_buckets(db, 300) == 300  # nothing written yet
    batch = _batch(0, 0, 40, 21)
    apply_now(BatchWriter(db, TOPIC, RULES, item_buckets=300), batch)
    assert reads.item_bucket_count(db) == 300
    with pytest.raises(SettingsError, match=r"PULSE_MONGO_ITEM_BUCKETS=4.* 300 buckets"):
        writes.settle_item_buckets(db, 4)
    events = [orjson.loads(value) for value in batch.records["value"]]
    until = datetime.fromtimestamp(KAFKA_TS / 1000, UTC)
    for item in {event["item_id"] for event in events}:
        count = sum(event["item_id"] == item for event in events)
        trend = reads.item_trend(db, item, MINUTE, until - timedelta(minutes=5), until)
        assert trend["total"].sum() == count
        hourly = reads.item_trend(db, item, HOUR, until - timedelta(hours=2), until)
        assert hourly["total"].sum() == count


def test_item_minutes_of_a_database_older_than_the_setting_are_read_in_256_buckets() -> None:
    memory = MemoryDatabase()
    db = _db(memory)
    apply_now(BatchWriter(db, TOPIC, RULES), _batch(0, 0, 10, 3))  # written without a counter
    with pytest.raises(SettingsError, match=r"PULSE_MONGO_ITEM_BUCKETS=300.* 256 buckets"):
        writes.settle_item_buckets(db, 300)
    assert writes.settle_item_buckets(db, 256) == 256
    assert reads.item_bucket_count(db) == 256


def test_per_user_documents_of_an_older_database_move_into_buckets_once() -> None:
    memory = MemoryDatabase()
    for user, total in (("u1", 3), ("u2", 5)):
        memory[LEGACY_USERS].insert_one({"_id": user, "total": total, "types": {"view": total}})
    db = _db(memory)
    migrations.move_legacy_users(db, 4)
    migrations.move_legacy_users(db, 4)  # a second consumer, or a restart: nothing added twice
    assert reads.user_totals(db) == {"u1": 3, "u2": 5}
    assert LEGACY_USERS not in memory.list_collection_names()
    writer = BatchWriter(db, TOPIC, RULES, user_buckets=4)
    flushed = apply_now(writer, _batch(0, 0, 20, 15))
    assert flushed.valid == 20
    assert reads.user_totals(db)["u1"] >= 3  # kept, and counted on from there


def test_a_new_batch_starting_before_the_stored_offsets_is_refused_unwritten() -> None:
    memory = MemoryDatabase()
    writer = BatchWriter(_db(memory), TOPIC, RULES)
    apply_batch(writer, _batch(0, 0, 10, seed=1))
    before = memory[TOTALS].find_one({"_id": TOTALS_ID})
    stale = _batch(0, 5, 10, seed=2)  # read by a member that lost p0 while it polled
    with pytest.raises(StaleBatchError) as refused:
        apply_batch(writer, stale)
    assert refused.value.partitions == {0}
    assert memory[TOTALS].find_one({"_id": TOTALS_ID}) == before
    entry = memory[LEDGER].find_one({"_id": refused.value.batch_id})
    assert entry is not None and entry["status"] == "stale"
    assert writes.unfinished_batches(_db(memory), TOPIC) == []


def test_two_topics_in_one_database_count_apart() -> None:
    memory = MemoryDatabase()
    one, two = BatchWriter(_db(memory), "b", RULES), BatchWriter(_db(memory), "a", RULES)
    first, second = _batch(0, 0, 1_000, seed=1), _batch(0, 0, 100, seed=2)
    apply_now(one, MicroBatch("b", first.records))
    apply_now(two, MicroBatch("a", second.records))
    totals = reads.totals(_db(memory))
    assert totals is not None and totals.events == 1_100


def test_an_entity_flush_keeps_each_days_active_users_for_dau_wau_and_mau() -> None:
    now = datetime.now(UTC)
    rules = ValidationRules(interaction_types=TYPES, max_age_ms=8 * 86_400_000)
    days = {now: range(100), now - timedelta(days=1): range(50, 150)}
    values = [
        orjson.dumps(
            {"user_id": f"u{n}", "item_id": "i1", "interaction_type": "view", "timestamp": stamp}
        )
        for moment, users in days.items()
        for n in users
        for stamp in [int(moment.timestamp() * 1000)]
    ]
    count = len(values)
    now_ms = int(now.timestamp() * 1000)
    batch = MicroBatch.from_columns(
        TOPIC, [0] * count, list(range(count)), [now_ms] * count, [None] * count, values
    )
    memory = MemoryDatabase()
    writer = BatchWriter(_db(memory), TOPIC, rules)
    apply_now(writer, batch)
    stored = {doc["_id"]: doc["users_hll"] for doc in memory[DAY_SKETCHES].find()}
    apply_now(writer, batch)  # a replay: the registers are as they were
    assert {doc["_id"]: doc["users_hll"] for doc in memory[DAY_SKETCHES].find()} == stored
    assert set(stored) == {f"{moment:%Y-%m-%d}" for moment in days}

    figures = active_users.active_users(_db(memory), now.date())
    assert figures.day == pytest.approx(100, rel=0.05)
    assert figures.week == figures.month == pytest.approx(150, rel=0.05)
    assert figures.stickiness == pytest.approx(100 / 150, rel=0.1)
