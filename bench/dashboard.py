"""Dashboard queries at scale: each page's queries, uncached, against a database holding
`--users` users and `--items` items (by default 1M and 100k, as the goal states).

The database is seeded once with documents shaped exactly like the consumer's (the seeding is
kept between runs: it takes minutes on FerretDB) and every page's queries are timed as the
page runs them, median of `--repeat` runs. The item chart's hour of item x minute buckets is
seeded as full as every item being active every minute would make it.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import numpy as np
import typer
from pymongo.database import Database

from bench.common import console, report
from pulse.config import load_settings
from pulse.generate.simulate import zipf_cdf
from pulse.ingest import sketches
from pulse.ingest.active_users import MONTH_DAYS, day_keys
from pulse.ingest.sessions import Session, UserSessions
from pulse.ingest.trending import RISING_BASELINE_MINUTES, RISING_MINUTES, WINDOWS
from pulse.store import active_users, leaders, reads, session_figures, trending, writes
from pulse.store.client import Document, mongo_client
from pulse.store.schema import (
    BUCKET_ITEMS,
    BUCKET_VERSION,
    COUNTERS,
    DAY,
    DAY_SKETCHES,
    DEAD_FIELDS,
    DEAD_LETTERS,
    HOUR,
    ITEM_BUCKETS,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEADERS,
    LEDGER,
    LEGACY_ITEMS,
    LEGACY_USERS,
    MINUTE,
    MINUTE_LEADERS,
    MINUTES,
    SESSIONS,
    SESSIONS_ALL,
    TIMELINE,
    TOTALS,
    TOTALS_ID,
    USER_BUCKETS,
    Entity,
    item_bucket,
    item_entity_bucket,
    item_hour_id,
    item_minute_id,
    minute_id,
    period_id,
    period_starts,
    record_id,
    user_bucket,
)
from pulse.store.statements import activity_bin
from pulse.store.user_figures import UserFigures, pack
from pulse.store.writes import ensure_indexes

TYPES = ("view", "click", "add_to_cart", "purchase")
GOAL_MS = 200.0
TRENDING_MINUTES = max(*WINDOWS, RISING_MINUTES + RISING_BASELINE_MINUTES)
"""Boards the Items page reads: the longest trending window, or the rising items' minutes."""


def _totals(count: int, rng: np.random.Generator, mean: float) -> np.ndarray:
    weights = np.diff(np.concatenate([[0.0], zipf_cdf(count, 0.9)]))
    return np.maximum(1, rng.poisson(weights * count * mean)).astype(np.int64)


def _seeded_totals(users: int, items: int) -> dict[str, np.ndarray]:
    """Every seeded user's and item's total (the same draws on every run)."""
    rng = np.random.default_rng(5)
    return {Entity.USERS: _totals(users, rng, 20.0), Entity.ITEMS: _totals(items, rng, 20.0)}


def seed(db: Database[Document], users: int, items: int, now: datetime) -> None:
    """Documents shaped like the consumer's. Users and items are kept between runs (seeding
    them takes minutes on FerretDB); the small collections are rewritten every run."""
    totals = _seeded_totals(users, items)
    marker = db.bench_seed.find_one({"_id": "seed"})
    layout = f"{USER_BUCKETS}:strings+sessions+{ITEM_BUCKETS}"
    wanted = {"users": users, "items": items, "layout": layout}
    if not (marker and all(marker.get(key) == value for key, value in wanted.items())):
        _seed_entities(db, totals, now)
        db.bench_seed.replace_one({"_id": "seed"}, wanted, upsert=True)
    _seed_small(db, totals, now)


def _sessions(now_ms: int) -> UserSessions:
    """A user's sessions as a month of them leaves them: dozens, the latest still open."""
    return UserSessions(40, Session(now_ms - 1_200_000, now_ms, 25))


def _seed_entities(db: Database[Document], totals: dict[str, np.ndarray], now: datetime) -> None:
    for name in (LEGACY_USERS, USER_BUCKETS, LEGACY_ITEMS, ITEM_BUCKETS, "bench_seed", COUNTERS):
        db.drop_collection(name)
    ensure_indexes(db)
    seen = now - timedelta(hours=2)
    seen_ms, now_ms = int(seen.timestamp() * 1000), int(now.timestamp() * 1000)
    figures = [
        pack(UserFigures(int(total), seen_ms, now_ms, {"view": int(total)}, _sessions(now_ms)))
        for total in totals[Entity.USERS].tolist()
    ]
    # As many buckets as docs/consumer.md advises for this many users: ~400 users each.
    buckets = writes.settle_user_buckets(db, max(1, len(figures) // 400))
    by_bucket: dict[str, dict[str, str]] = {}
    for n, user in enumerate(figures):
        user_id = f"u{n + 1}"
        by_bucket.setdefault(user_bucket(user_id, buckets), {})[user_id] = user
    docs = [{"_id": bucket, "u": users} for bucket, users in by_bucket.items()]
    for start in range(0, len(docs), 5_000):
        db[USER_BUCKETS].insert_many(docs[start : start + 5_000])
        console.print(f"  seeded {min(start + 5_000, len(docs)):,}/{len(docs):,} user buckets")
    counts = totals[Entity.ITEMS]
    # The same number of buckets as the item x minute buckets (_seed_small): ~25 items each.
    item_buckets = writes.settle_item_buckets(db, max(1, len(counts) // 25))
    by_item_bucket: dict[str, dict[str, Any]] = {}
    for n, total in enumerate(counts.tolist()):
        item_id = f"i{n + 1}"
        by_item_bucket.setdefault(item_entity_bucket(item_id, item_buckets), {})[item_id] = {
            "total": int(total),
            "types": {"view": int(total)},
            "first_seen": seen,
            "last_seen": now,
            "first_batch": "seed",
        }
    item_docs = [
        {"_id": b, BUCKET_VERSION: 1, BUCKET_ITEMS: held} for b, held in by_item_bucket.items()
    ]
    db[ITEM_BUCKETS].insert_many(item_docs)
    console.print(f"  seeded {len(counts):,} items in {len(item_docs):,} buckets")


def _seed_small(db: Database[Document], totals: dict[str, np.ndarray], now: datetime) -> None:
    for name in (
        MINUTES,
        ITEM_MINUTES,
        ITEM_HOURS,
        TOTALS,
        LEDGER,
        DEAD_LETTERS,
        LEADERS,
        TIMELINE,
        DAY_SKETCHES,
        SESSIONS,
        MINUTE_LEADERS,
    ):
        db.drop_collection(name)
    ensure_indexes(db)
    # A month of full daily sketches (every register set): what a month of 1M users leaves.
    db[DAY_SKETCHES].insert_many(
        {"_id": day, "users_hll": {f"r{n}": 12 for n in range(sketches.REGISTERS)}}
        for day in day_keys(now.date(), MONTH_DAYS)
    )
    active_users.roll_up(db, now.date(), now)  # as the maintain deployment does every pass
    users, items = len(totals["users"]), len(totals["items"])
    bins = Counter(activity_bin(total) for total in totals["users"].tolist())
    sketch = {f"r{n}": 5 for n in range(sketches.REGISTERS)}
    minutes = [now.replace(second=0, microsecond=0) - timedelta(minutes=m) for m in range(60)]
    db[MINUTES].insert_many(
        {
            "_id": minute_id(minute),
            "minute": minute,
            "total": 20_000,
            "types": dict.fromkeys(TYPES, 5_000),
            "active_users": round(sketches.estimate(sketch)),
            "active_items": round(sketches.estimate(sketch)),
        }
        for minute in minutes
    )
    # Session figures of every minute of the hour and the half hour to come (sessions still
    # open), every hour of two weeks and every day of a year: what the Sessions page reads.
    session_figures = {"started": 900, "ended": 880, "events": 5_000, "length_ms": 9**9}
    periods = [(MINUTE, minute) for minute in minutes]
    periods += [(MINUTE, minutes[0] + timedelta(minutes=m)) for m in range(1, 32)]
    periods += [(HOUR, hour) for hour in period_starts(HOUR, now - timedelta(days=14), now)]
    periods += [(DAY, day) for day in period_starts(DAY, now - timedelta(days=365), now)]
    db[SESSIONS].insert_many(
        [{"_id": period_id(period, start)} | session_figures for period, start in periods]
        + [{"_id": SESSIONS_ALL} | session_figures]
    )
    # A full board (twice BOARD_K candidates, the most it holds) for each minute the
    # Items page's trending and rising read.
    board = trending.pack({f"i{n + 1}": 1_000 - n for n in range(2 * trending.BOARD_K)})
    db[MINUTE_LEADERS].insert_many(
        {"_id": minute_id(now - timedelta(minutes=m)), trending.BOARD: board}
        for m in range(TRENDING_MINUTES)
    )
    # The item chart reads i1's bucket of each minute. As if every item were active every
    # minute (the worst case: 100k items a minute), that bucket holds every seeded item that
    # hashes to it, so the read parses what a full bucket weighs.
    # As many buckets as docs/consumer.md advises for this many items a minute: ~25 each.
    buckets = writes.settle_item_buckets(db, max(1, items // 25))
    bucket = item_bucket("i1", buckets)
    sharing = [f"i{n + 1}" for n in range(items) if item_bucket(f"i{n + 1}", buckets) == bucket]
    figures = {"total": 300, "types": {"view": 240, "click": 50, "add_to_cart": 8, "purchase": 2}}
    db[ITEM_MINUTES].insert_many(
        {
            "_id": item_minute_id("i1", minute_id(minute), buckets),
            "minute": minute,
            BUCKET_ITEMS: dict.fromkeys(sharing, figures),
        }
        for minute in minutes
    )
    # Likewise i1's item x hour bucket of every hour the longest item trend reads.
    hours = period_starts(HOUR, now - reads.ITEM_TREND_WINDOW, now)
    db[ITEM_HOURS].insert_many(
        {
            "_id": item_hour_id("i1", hour, buckets),
            "hour": hour,
            BUCKET_ITEMS: dict.fromkeys(sharing, 18_000),
        }
        for hour in hours
    )
    db[TOTALS].insert_one(
        {"_id": TOTALS_ID, "events": users * 20, "users": users, "items": items, "last_event": now}
        | {"user_bins": dict(bins), DEAD_FIELDS: {"timestamp": 1_000}}
    )
    writes.file_in_timeline(db, LEDGER, now, [f"b{n}" for n in range(500)])
    writes.file_in_timeline(db, DEAD_LETTERS, now, [record_id("t", 0, n) for n in range(1_000)])
    db[LEDGER].insert_many(
        {
            "_id": f"b{n}",
            "status": "applied",
            "started_at": now - timedelta(seconds=n),
            "records": 5_000,
            "seconds": {"write": 1.0},
        }
        for n in range(500)
    )
    db[DEAD_LETTERS].insert_many(
        {
            "_id": record_id("t", 0, n),
            "status": "dead",
            "field": "timestamp",
            "reason": "bad",
            "raw": b"{",
            "received_at": now,
        }
        for n in range(1_000)
    )
    # The boards the consumer would keep had every seeded document come in one batch.
    for entity, prefix in ((Entity.USERS, "u"), (Entity.ITEMS, "i")):
        by_id = {f"{prefix}{n + 1}": int(t) for n, t in enumerate(totals[entity].tolist())}
        writes.update_leaders(db, entity, by_id, by_id if entity == Entity.ITEMS else None)


def pages(db: Database[Document], now: datetime) -> dict[str, list[Callable[[], Any]]]:
    """Each page's queries, as the page calls them (without the dashboard's cache)."""
    since = now - timedelta(hours=1)
    return {
        "overview": [
            lambda: reads.totals(db),
            lambda: reads.last_full_minute(db, now),
            lambda: reads.minutes(db, since, now),
        ],
        "items": [
            lambda: trending.boards(db, now - timedelta(minutes=TRENDING_MINUTES - 1), now),
            lambda: reads.ranked(db, Entity.ITEMS, "item_id", leaders.TOP_K),
            lambda: reads.ranked(db, Entity.ITEMS, "item_id", 10, True),
            lambda: reads.entity(db, Entity.ITEMS, "item_id", "i1"),
            lambda: reads.item_trend(db, "i1", MINUTE, since, now),
        ],
        "items, 14 days": [
            lambda: reads.ranked(db, Entity.ITEMS, "item_id", 10),
            lambda: reads.ranked(db, Entity.ITEMS, "item_id", 10, True),
            lambda: reads.entity(db, Entity.ITEMS, "item_id", "i1"),
            lambda: reads.item_trend(db, "i1", HOUR, now - reads.ITEM_TREND_WINDOW, now),
        ],
        "users": [
            lambda: reads.user_histogram(reads.totals(db) or reads.Totals()),
            lambda: reads.ranked(db, Entity.USERS, "user_id", 10),
            lambda: reads.entity(db, Entity.USERS, "user_id", "u1"),
            lambda: active_users.active_users(db, now.date()),
        ],
        "funnel": [
            lambda: reads.totals(db),
            lambda: reads.minutes(db, since, now, False),
        ],
        "sessions": [
            lambda: session_figures.all_sessions(db),
            lambda: session_figures.sessions_by_period(db, MINUTE, since, now),
            lambda: session_figures.open_sessions(db, now, timedelta(minutes=90)),
        ],
        "sessions, 7 days": [
            lambda: session_figures.all_sessions(db),
            lambda: session_figures.sessions_by_period(db, HOUR, now - timedelta(days=7), now),
            lambda: session_figures.open_sessions(db, now, timedelta(minutes=90)),
        ],
        "alerts": [lambda: reads.alerts(db, since)],
        "health": [
            lambda: reads.ledger(db, 200),
            lambda: reads.dead_letter_reasons(db),
            lambda: reads.dead_letter_samples(db, 20),
        ],
    }


def _timed(action: Callable[[], Any]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def main(
    users: Annotated[int, typer.Option(help="Users in the database.")] = 1_000_000,
    items: Annotated[int, typer.Option(help="Items in the database.")] = 100_000,
    repeat: Annotated[int, typer.Option(help="Timings per page (median reported).")] = 5,
    database: Annotated[
        str, typer.Option(help="Database seeded and read.")
    ] = "pulse_bench_dashboard",
) -> dict[str, Any]:
    """Seed (once), then time every page's queries; write bench/results/dashboard.json."""
    settings = load_settings()
    now = datetime.now(UTC)
    with mongo_client(settings.mongo) as client:
        db = client[database]
        console.print(f"seeding {database} with {users:,} users and {items:,} items (once)")
        seed(db, users, items, now)
        rows = []
        for page, calls in pages(db, now).items():
            per_query = [[_timed(call) for _ in range(repeat)] for call in calls]
            medians = [statistics.median(times) for times in per_query]
            rows.append(
                {
                    "page": page,
                    "queries": len(calls),
                    "total ms (median)": sum(medians),
                    "slowest query ms": max(medians),
                    "within 200 ms": "yes" if sum(medians) <= GOAL_MS else "no",
                }
            )
    report("dashboard", rows, {"users": users, "items": items, "repeat": repeat})
    return {"rows": rows}


if __name__ == "__main__":
    typer.run(main)
