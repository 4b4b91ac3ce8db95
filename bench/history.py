"""Page and write costs as history grows: one hour, and N days of what `make run` leaves.

For each history length a database is seeded with the documents the default run (500
events/s, 500 items, about one micro-batch a second, 0.2% dead letters) leaves after that long
with `pulse maintain` every 10 minutes: the global minutes, alerts (one every 5 minutes), and
the ledger, dead letters and per-minute detail of their retention (PULSE_RETENTION_*), plus the
10 minutes past each cutoff that the next pass removes. Then one pass runs (timed), and every
page's queries and a micro-batch write are timed, median of `--repeat`.

`--unpruned` seeds the whole history of the ledger and dead letters instead (a database
written before retention existed, or one whose passes never ran), for the first pass's cost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import orjson
import typer
from pymongo.database import Database
from pymongo.errors import NetworkTimeout

from bench.common import console, report
from bench.dashboard import GOAL_MS, TYPES, pages
from pulse.config import RetentionSettings, load_settings
from pulse.ingest import sketches
from pulse.ingest.batch import MicroBatch, OffsetRange, batch_id
from pulse.pipeline.opening import open_pipeline
from pulse.pipeline.target import Target
from pulse.store import retention, writes
from pulse.store.client import Document, mongo_client
from pulse.store.schema import (
    ALERTS,
    BUCKET_ITEMS,
    BUCKET_VERSION,
    COUNTERS,
    DEAD_FIELDS,
    DEAD_LETTERS,
    HOUR,
    ITEM_BUCKETS,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEDGER,
    MAINTENANCE,
    MINUTE_SKETCHES,
    MINUTES,
    OPEN_BATCHES,
    TOTALS,
    TOTALS_ID,
    USER_MINUTES,
    Entity,
    item_entity_bucket,
    item_hour_id,
    item_minute_id,
    minute_id,
    period_starts,
    record_id,
    user_minute_id,
)

BATCHES_PER_MINUTE = 60
DEAD_PER_MINUTE = 60
ITEMS_PER_MINUTE = 500
PARTITIONS = 3
ALERT_EVERY_MINUTES = 5
PAST_CUTOFF = timedelta(minutes=10)
PAGES = ("overview", "items", "users", "alerts", "health")
WRITE_EVENTS = 500
"""Events in each timed micro-batch: one second of the default run."""


def _minutes(since: datetime, until: datetime) -> Iterator[datetime]:
    moment = since.replace(second=0, microsecond=0)
    if moment < since:
        moment += timedelta(minutes=1)
    while moment < until:
        yield moment
        moment += timedelta(minutes=1)


def _insert(db: Database[Document], collection: str, docs: list[Document]) -> None:
    for start in range(0, len(docs), 10_000):
        db[collection].insert_many(docs[start : start + 10_000], ordered=False)


def _retention_periods(keep: RetentionSettings) -> dict[str, timedelta]:
    """How long each `pulse maintain` target keeps its documents."""
    kept = {
        LEDGER: timedelta(hours=keep.ledger_hours),
        DEAD_LETTERS: timedelta(days=keep.dead_letter_days),
        ALERTS: timedelta(days=keep.alert_days),
    } | dict.fromkeys(retention.DETAIL, timedelta(days=keep.minute_days))
    return kept | dict.fromkeys(retention.HOURLY, timedelta(days=keep.hour_days))


def _seed_item_hours(db: Database[Document], since: datetime, now: datetime, buckets: int) -> int:
    """Every item's total of each hour from `since`'s on; returns how many documents."""
    written = 0
    for hour in period_starts(HOUR, since, now):
        hourly: dict[str, dict[str, int]] = {}
        for n in range(ITEMS_PER_MINUTE):
            item = f"i{n}"
            hourly.setdefault(item_hour_id(item, hour, buckets), {})[item] = 3_600
        _insert(db, ITEM_HOURS, [{"_id": b, "hour": hour, "i": i} for b, i in hourly.items()])
        written += len(hourly)
    return written


def _seed_items(db: Database[Document], item_buckets: int) -> None:
    """The run's items in their buckets, and the leader boards the consumer keeps of them."""
    totals = {f"i{n}": 1_000 + n for n in range(ITEMS_PER_MINUTE)}
    held: dict[str, dict[str, Any]] = {}
    for item, total in totals.items():
        figures = {"total": total, "types": {"view": total}}
        held.setdefault(item_entity_bucket(item, item_buckets), {})[item] = figures
    _insert(
        db,
        ITEM_BUCKETS,
        [{"_id": b, BUCKET_VERSION: 1, BUCKET_ITEMS: items} for b, items in held.items()],
    )
    writes.update_leaders(db, Entity.ITEMS, totals, totals)


def seed(
    db: Database[Document],
    history: timedelta,
    now: datetime,
    keep: RetentionSettings,
    unpruned: bool,
    item_buckets: int,
) -> int:
    """The documents `history` of the default run leaves, items in `item_buckets` item x
    minute buckets a minute; returns how many were written."""
    begin = now - history
    writes.settle_item_buckets(db, item_buckets)

    def kept_since(period: timedelta) -> datetime:
        return begin if unpruned else max(begin, now - period - PAST_CUTOFF)

    # Where the passes every 10 minutes left their marks (unpruned: none ever ran).
    for target, period in _retention_periods(keep).items():
        mark = minute_id(kept_since(period) - timedelta(minutes=1))
        db[MAINTENANCE].update_one({"_id": target}, {"$set": {"through": mark}}, upsert=True)

    written = 0
    sketch = {"users_hll": {f"r{n}": 5 for n in range(sketches.REGISTERS)}}
    minutes, alerts = [], []
    for moment in _minutes(begin, now):
        minutes.append(
            {"_id": minute_id(moment), "minute": moment, "total": 30_000}
            | {"types": dict.fromkeys(TYPES, 7_500)}
        )
        if moment.minute % ALERT_EVERY_MINUTES == 0:
            alert_id = f"hot-item|i1|{minute_id(moment)}"
            writes.file_in_timeline(db, ALERTS, moment, [alert_id])
            alerts.append(
                {
                    "_id": alert_id,
                    "rule_id": "hot-item",
                    "key": "i1",
                    "state": "resolved",
                    "fired_at": moment,
                    "window_start": moment,
                    "value": 900.0,
                    "threshold": 500.0,
                }
            )
    _insert(db, MINUTES, minutes)
    _insert(db, ALERTS, alerts)
    written += len(minutes) + len(alerts)

    offset = 0
    for moment in _minutes(kept_since(timedelta(hours=keep.ledger_hours)), now):
        ids = []
        entries = []
        for n in range(BATCHES_PER_MINUTE):
            ranges = [OffsetRange(n % PARTITIONS, offset, offset + 499)]
            offset += 500
            ids.append(batch_id("bench", ranges))
            entries.append(
                {
                    "_id": ids[-1],
                    "status": "applied",
                    "topic": "bench",
                    "started_at": moment + timedelta(seconds=n),
                    "records": 500,
                    "dead_lettered": 1,
                    "docs_written": 3,
                    "seconds": {"write": 0.02},
                    "ranges": [
                        {"partition": r.partition, "first": r.first, "last": r.last} for r in ranges
                    ],
                }
            )
        writes.file_in_timeline(db, LEDGER, moment, ids)
        _insert(db, LEDGER, entries)
        written += len(entries)
    for moment in _minutes(kept_since(timedelta(days=keep.dead_letter_days)), now):
        base = int(moment.timestamp())
        ids = [record_id("bench", n % PARTITIONS, base * 100 + n) for n in range(DEAD_PER_MINUTE)]
        docs: list[Document] = [
            {
                "_id": dead_id,
                "status": "dead",
                "field": "timestamp",
                "reason": "timestamp: not a time",
                "raw": b'{"timestamp": "x"}',
                "received_at": moment,
                "batch_id": "seed",
            }
            for dead_id in ids
        ]
        writes.file_in_timeline(db, DEAD_LETTERS, moment, ids)
        _insert(db, DEAD_LETTERS, docs)
        written += len(docs)
    for moment in _minutes(kept_since(timedelta(days=keep.minute_days)), now):
        minute = minute_id(moment)
        buckets: dict[str, dict[str, dict[str, int]]] = {}
        for n in range(ITEMS_PER_MINUTE):
            item = f"i{n}"
            buckets.setdefault(item_minute_id(item, minute, item_buckets), {})[item] = {"total": 60}
        details = [
            {"_id": bucket, "minute": moment, "i": items} for bucket, items in buckets.items()
        ]
        _insert(db, ITEM_MINUTES, details)
        _insert(
            db,
            USER_MINUTES,
            [
                {"_id": user_minute_id(minute, p), "minute_id": minute, "counts": {"u1": 3}}
                for p in range(PARTITIONS)
            ],
        )
        db[MINUTE_SKETCHES].insert_one({"_id": minute} | sketch)
        written += len(details) + PARTITIONS + 1
    written += _seed_item_hours(db, kept_since(timedelta(days=keep.hour_days)), now, item_buckets)
    _seed_items(db, item_buckets)
    # Written by every Pulse database's first session: no open-batch markers to rebuild.
    db[COUNTERS].update_one({"_id": OPEN_BATCHES}, {"$set": {"value": 1}}, upsert=True)
    db["offsets"].insert_many(
        [
            {
                "_id": f"bench:{p}",
                "topic": "bench",
                "partition": p,
                "next_offset": offset,
                "entities_next": offset,
            }
            for p in range(PARTITIONS)
        ]
    )
    events = len(minutes) * 30_000
    db[TOTALS].insert_one(
        {
            "_id": TOTALS_ID,
            "events": events,
            "users": 5_000,
            "items": ITEMS_PER_MINUTE,
            "last_event": now,
            "dead_lettered": len(minutes) * DEAD_PER_MINUTE,
            DEAD_FIELDS: {"timestamp": len(minutes) * DEAD_PER_MINUTE},
        }
    )
    return written + ITEMS_PER_MINUTE + PARTITIONS + 1


def _batch(first: int) -> MicroBatch:
    stamp = int(time.time() * 1000)
    values = [
        orjson.dumps(
            {
                "user_id": f"u{n % 5_000}",
                "item_id": f"i{n % 500}",
                "interaction_type": "view",
                "timestamp": stamp,
            }
        )
        for n in range(WRITE_EVENTS)
    ]
    offsets = list(range(first, first + WRITE_EVENTS))
    return MicroBatch.from_columns(
        "bench", [0] * WRITE_EVENTS, offsets, [stamp] * WRITE_EVENTS, [None] * WRITE_EVENTS, values
    )


def write_ms(database: str, repeat: int) -> float:
    """Median milliseconds of writing one micro-batch (counts tier, ledger, offsets)."""
    settings = load_settings(
        mongo={"database": database},
        kafka={"topic": "bench", "dlq_topic": None},
        alerts={"rules_file": "/nonexistent"},
    )
    times = []
    with open_pipeline(settings, "bench") as pipeline, mongo_client(settings.mongo) as client:
        stored = client[database]["offsets"].find_one({"_id": "bench:0"}) or {}
        first = int(stored.get("next_offset", 0)) + 1_000_000
        for n in range(repeat):
            batch = _batch(first + n * WRITE_EVENTS)
            started = time.perf_counter()
            pipeline.writer.apply(batch, Target.polled(batch, fresh=True))
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def scanning_health_ms(db: Database[Document]) -> float | None:
    """The health page's reads as they were before the timeline (a sort and a `$group` over
    what grows), timed once: the baseline of this run. None: one read outlasted the client's
    socket timeout (30 s)."""
    started = time.perf_counter()
    group = {"$group": {"_id": "$field", "count": {"$sum": 1}}}
    try:
        list(db[LEDGER].find({}, {"dead_letter_ids": 0}).sort("started_at", -1).limit(200))
        list(db[DEAD_LETTERS].aggregate([{"$match": {"status": "dead"}}, group]))
        list(db[DEAD_LETTERS].find({"status": "dead"}).sort("received_at", -1).limit(20))
    except NetworkTimeout:
        return None
    return (time.perf_counter() - started) * 1000


def main(
    days: Annotated[str, typer.Option(help="History lengths in days, comma-separated.")] = "1,7,30",
    repeat: Annotated[int, typer.Option(help="Timings per page and write (median).")] = 5,
    scans: Annotated[
        bool, typer.Option(help="Also time the health page's former scanning reads, once.")
    ] = True,
    unpruned: Annotated[
        bool, typer.Option(help="Seed the whole ledger and dead-letter history.")
    ] = False,
) -> dict[str, Any]:
    """Seed each history, run one retention pass, time every page and a micro-batch write."""
    settings = load_settings()
    keep = settings.retention
    lengths = [("empty", timedelta(0)), ("1 hour", timedelta(hours=1))]
    lengths += [(f"{d} days", timedelta(days=float(d))) for d in days.split(",") if d]
    rows = []
    with mongo_client(settings.mongo) as client:
        for label, history in lengths:
            name = f"pulse_bench_history_{int(history.total_seconds())}"
            client.drop_database(name)
            db = client[name]
            now = datetime.now(UTC)
            started = time.perf_counter()
            seeded = seed(db, history, now, keep, unpruned, settings.mongo.item_buckets)
            console.print(
                f"{label}: seeded {seeded:,} documents in {time.perf_counter() - started:.0f} s"
            )
            started = time.perf_counter()
            passes = retention.maintain(db, keep, datetime.now(UTC))
            pass_s = time.perf_counter() - started
            row: dict[str, Any] = {
                "history": label,
                "documents": seeded,
                "pass s": pass_s,
                "removed": sum(p.removed for p in passes),
            }
            for page, calls in pages(db, datetime.now(UTC)).items():
                medians = []
                for call in calls:
                    times = []
                    for _ in range(repeat):
                        begun = time.perf_counter()
                        call()
                        times.append((time.perf_counter() - begun) * 1000)
                    medians.append(statistics.median(times))
                row[f"{page} ms"] = sum(medians)
            if scans:
                row["health by scans ms"] = scanning_health_ms(db)
            row["batch write ms"] = write_ms(name, repeat)
            slowest = max(row[f"{page} ms"] for page in PAGES)
            row["pages within 200 ms"] = "yes" if slowest <= GOAL_MS else "no"
            rows.append(row)
            console.print(row)
            client.drop_database(name)
    empty = rows[0]["batch write ms"]
    for row in rows:
        row["write vs empty"] = row["batch write ms"] / empty
    report(
        "history", rows, {"repeat": repeat, "unpruned": unpruned, "retention": keep.model_dump()}
    )
    return {"rows": rows}


if __name__ == "__main__":
    typer.run(main)
