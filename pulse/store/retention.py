"""Retention: what `pulse maintain` prunes, and how, without scanning what grows.

Every target is pruned by `_id`, minute by minute, from where the last pass stopped
(`maintenance` documents) up to its cutoff: the ledger, dead letters and alerts through the
timeline (pulse/store/schema.py:TIMELINE), per-minute documents by the ids their minutes give.
Each step can be repeated: a pass killed anywhere and run again removes what is left and no
more, and moves its mark only after the documents before it are gone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from pymongo.database import Database

from pulse.config import RetentionSettings
from pulse.ingest.active_users import oldest_day_kept
from pulse.store import active_users
from pulse.store.client import Document
from pulse.store.reads import by_ids, item_bucket_count, minute_ids
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
    MAINTENANCE,
    MINUTE,
    MINUTE_LEADERS,
    MINUTE_SKETCHES,
    MINUTES,
    OFFSETS,
    PERIODS,
    SESSIONS,
    TIMELINE,
    TIMELINE_PERIODS,
    UNFINISHED,
    USER_MINUTES,
    item_hour_ids_of,
    item_minute_ids_of,
    minute_id,
    parse_minute_id,
    parse_period_key,
    period_id,
    period_key,
    period_start,
    timeline_id,
    user_minute_id,
)

MINUTES_PER_STEP = 60
"""Minutes pruned per step: each step's ids fit a few short `$in` lists."""
MAX_MINUTES_PER_PASS = 7 * 24 * 60
"""A pass prunes at most a week of minutes per target; the next pass goes on (after a long
stop, or on a database older than its retention the first time)."""
_DELETE_CHUNK = 500


@dataclass(frozen=True)
class Pruned:
    """What one pass did to one target."""

    target: str
    removed: int
    kept: int
    """Documents past their retention kept because they are still needed (unfinished ledger
    entries: they can still be replayed)."""
    through: str | None
    """The last minute pruned (None: nothing is old enough yet)."""
    cutoff: datetime

    def row(self) -> dict[str, str | int]:
        """The pass as one table row (`pulse maintain`, the flow's artifact)."""
        return {
            "collection": self.target,
            "removed": self.removed,
            "kept past retention": self.kept,
            "pruned through": self.through or "nothing old enough",
            "cutoff": minute_id(self.cutoff),
        }


def _mark(db: Database[Document], target: str) -> str | None:
    doc = db[MAINTENANCE].find_one({"_id": target})
    return None if doc is None else str(doc["through"])


def _set_mark(db: Database[Document], target: str, through: str) -> None:
    db[MAINTENANCE].update_one({"_id": target}, {"$max": {"through": through}}, upsert=True)


def start_marks(db: Database[Document], since: datetime, retention: RetentionSettings) -> None:
    """Give targets without a mark one where a database new at `since` can hold documents:
    from `since` on; per-minute detail from a minute retention before it, and hourly sums
    from LATE_HOURS before it (late events are written that far back). Its first pass reads
    no minute before."""
    reach = {target: timedelta(days=retention.minute_days) for target in DETAIL}
    reach |= dict.fromkeys((*HOURLY, *DAILY), LATE_HOURS)
    for target in TARGETS:
        start_mark(db, target, since - reach.get(target, timedelta(0)))


def start_mark(db: Database[Document], target: str, start: datetime) -> None:
    """Where a target without a mark is pruned from: `start`, its oldest possible document."""
    db[MAINTENANCE].update_one(
        {"_id": target},
        {"$setOnInsert": {"through": minute_id(start - timedelta(minutes=1))}},
        upsert=True,
    )


def _first_minute(db: Database[Document], target: str) -> datetime | None:
    """Where a target without a mark starts: its oldest minute, found once by reading the
    ids of the timeline (or of the global minutes), which hold no document bodies."""
    if target in LISTED:
        collection, prefix, period = TIMELINE, f"{target}|", TIMELINE_PERIODS[target]
    else:
        collection, prefix, period = MINUTES, "", MINUTE
    keys = [
        str(doc["_id"]).removeprefix(prefix)
        for doc in db[collection].find({}, {"_id": 1})
        if str(doc["_id"]).startswith(prefix)
    ]
    return parse_period_key(period, min(keys)) if keys else None


def _minutes_due(db: Database[Document], target: str, cutoff: datetime) -> Iterator[list[str]]:
    """The minute ids to prune, in steps, oldest first: after the mark, up to the cutoff."""
    mark = _mark(db, target)
    if mark is not None:
        start = parse_minute_id(mark) + timedelta(minutes=1)
    else:
        first = _first_minute(db, target)
        if first is None:
            return
        start = first
    last = min(cutoff - timedelta(minutes=1), start + timedelta(minutes=MAX_MINUTES_PER_PASS - 1))
    due = minute_ids(start, last) if last >= start else []
    for begin in range(0, len(due), MINUTES_PER_STEP):
        yield due[begin : begin + MINUTES_PER_STEP]


def _period_ends(period: str, minutes: list[str]) -> list[datetime]:
    """The periods that end with one of `minutes` (each given by its start): those whose
    every minute is now due."""
    ends = []
    for minute in minutes:
        start = parse_minute_id(minute)
        after = start + timedelta(minutes=1)
        if period_start(period, after) == after:
            ends.append(start)
    return ends


def _delete(db: Database[Document], collection: str, ids: list[str], extra: Document) -> int:
    removed = 0
    for begin in range(0, len(ids), _DELETE_CHUNK):
        chunk = ids[begin : begin + _DELETE_CHUNK]
        removed += db[collection].delete_many({"_id": {"$in": chunk}, **extra}).deleted_count
    return removed


def prune_listed(db: Database[Document], collection: str, cutoff: datetime) -> Pruned:
    """Remove the documents of `collection` the timeline lists before `cutoff`, then those
    timeline documents. Unfinished ledger entries stay, listed again under the current
    minute, so a later pass removes them once they are done."""
    removed = kept = 0
    through = None
    ledger = collection == LEDGER
    keep: Document = {"status": {"$nin": list(UNFINISHED)}} if ledger else {}
    waiting = _waiting_for_flush(db) if ledger else set()
    period = TIMELINE_PERIODS[collection]
    for step in _minutes_due(db, collection, cutoff):
        listing_ids = [timeline_id(collection, end) for end in _period_ends(period, step)]
        listed = [
            str(doc_id)
            for doc in by_ids(db, TIMELINE, listing_ids, {"ids": 1})
            for doc_id in doc.get("ids", [])
        ]
        removed += _delete(db, collection, [i for i in listed if i not in waiting], keep)
        if ledger:
            left = [str(doc["_id"]) for doc in by_ids(db, collection, listed, {"_id": 1})]
            if left:
                kept += len(left)
                db[TIMELINE].update_one(
                    {"_id": timeline_id(collection, cutoff)},
                    {"$addToSet": {"ids": {"$each": left}}},
                    upsert=True,
                )
        _delete(db, TIMELINE, listing_ids, {})
        through = step[-1]
        _set_mark(db, collection, through)
    return Pruned(collection, removed, kept, through, cutoff)


def _waiting_for_flush(db: Database[Document]) -> set[str]:
    """Ledger entries an entity flush will re-read (listed in `offsets`), kept at any age."""
    return {
        str(batch_id)
        for doc in db[OFFSETS].find({}, {ENTITY_BATCHES: 1})
        for batch_id in doc.get(ENTITY_BATCHES, [])
    }


def _partitions(db: Database[Document]) -> range:
    found = [int(doc["partition"]) for doc in db[OFFSETS].find({}, {"partition": 1})]
    return range(max(found, default=-1) + 1)


def prune_minutes(
    db: Database[Document],
    target: str,
    ids_of: Callable[[list[str]], list[str]],
    cutoff: datetime,
    collection: str | None = None,
) -> Pruned:
    """Remove the documents of `collection` (default: the target's own) of the minutes
    before `cutoff`, by the ids `ids_of` gives for a step's minutes."""
    removed = 0
    through = None
    for step in _minutes_due(db, target, cutoff):
        removed += _delete(db, collection or target, ids_of(step), {})
        through = step[-1]
        _set_mark(db, target, through)
    return Pruned(target, removed, 0, through, cutoff)


LISTED = (LEDGER, DEAD_LETTERS, ALERTS)
"""Targets found through the timeline."""
SESSION_MINUTES = "session_minutes"
"""The target of the per-minute documents of `sessions` (per-day ones are kept for good)."""
SESSION_HOURS = "session_hours"
"""The target of the per-hour documents of `sessions`."""
DETAIL = (ITEM_MINUTES, USER_MINUTES, MINUTE_SKETCHES, MINUTE_LEADERS, SESSION_MINUTES, MINUTES)
"""Per-minute documents, found by the ids of their minutes (the global minutes last: a
target without a mark starts from the oldest of them)."""
LATE_HOURS = timedelta(days=8)
"""How far back a new database's first hourly sums can reach: late events are accepted up
to a week old (PULSE_CONSUMER_MAX_EVENT_AGE_SECONDS)."""
HOURS = "hours"
"""The target of the hourly sums in `periods` (daily ones are kept for good)."""
HOURLY = (HOURS, ITEM_HOURS, SESSION_HOURS)
"""Per-hour documents, kept PULSE_RETENTION_HOUR_DAYS after their hour."""
DAILY = (DAY_SKETCHES,)
"""Per-day documents, kept from `oldest_day_kept` on (pulse/ingest/active_users.py)."""
TARGETS = (*LISTED, *DETAIL, *HOURLY, *DAILY)
"""Every collection `pulse maintain` prunes, in the order it prunes them."""


def maintain(db: Database[Document], retention: RetentionSettings, now: datetime) -> list[Pruned]:
    """One pass over every target: what each removed and kept. The pass then rolls the
    days before today up for the Users page (pulse/store/active_users.py)."""
    pruned = _prune(db, retention, now)
    active_users.roll_up(db, now.date(), now)
    return pruned


def _prune(db: Database[Document], retention: RetentionSettings, now: datetime) -> list[Pruned]:
    minutes_cutoff = now - timedelta(days=retention.minute_days)
    partitions = _partitions(db)
    item_buckets = item_bucket_count(db)

    def item_minute_ids(step: list[str]) -> list[str]:
        return [doc_id for minute in step for doc_id in item_minute_ids_of(minute, item_buckets)]

    def user_minute_ids(step: list[str]) -> list[str]:
        return [user_minute_id(minute, p) for minute in step for p in partitions]

    def hour_ids(step: list[str]) -> list[str]:
        return [period_id(HOUR, end) for end in _period_ends(HOUR, step)]

    def session_minute_ids(step: list[str]) -> list[str]:
        return [period_id(MINUTE, parse_minute_id(minute)) for minute in step]

    def item_hour_ids(step: list[str]) -> list[str]:
        ends = _period_ends(HOUR, step)
        return [doc_id for end in ends for doc_id in item_hour_ids_of(end, item_buckets)]

    hours_cutoff = now - timedelta(days=retention.hour_days)

    days_cutoff = datetime.combine(oldest_day_kept(now.date()), time(), UTC)

    def day_keys_ending(step: list[str]) -> list[str]:
        return [period_key(DAY, end) for end in _period_ends(DAY, step)]

    return [
        prune_listed(db, LEDGER, now - timedelta(hours=retention.ledger_hours)),
        prune_listed(db, DEAD_LETTERS, now - timedelta(days=retention.dead_letter_days)),
        prune_listed(db, ALERTS, now - timedelta(days=retention.alert_days)),
        prune_minutes(db, ITEM_MINUTES, item_minute_ids, minutes_cutoff),
        prune_minutes(db, USER_MINUTES, user_minute_ids, minutes_cutoff),
        prune_minutes(db, MINUTE_SKETCHES, list, minutes_cutoff),
        prune_minutes(db, MINUTE_LEADERS, list, minutes_cutoff),
        prune_minutes(db, SESSION_MINUTES, session_minute_ids, minutes_cutoff, SESSIONS),
        prune_minutes(db, MINUTES, list, minutes_cutoff),
        prune_minutes(db, HOURS, hour_ids, hours_cutoff, PERIODS),
        prune_minutes(db, ITEM_HOURS, item_hour_ids, hours_cutoff),
        prune_minutes(db, SESSION_HOURS, hour_ids, hours_cutoff, SESSIONS),
        prune_minutes(db, DAY_SKETCHES, day_keys_ending, days_cutoff),
        *drop_legacy_item_minutes(db, now, minutes_cutoff),
    ]


def drop_legacy_item_minutes(
    db: Database[Document], now: datetime, cutoff: datetime
) -> list[Pruned]:
    """Drop the per-item minute documents a database written before item x minute buckets
    holds, once a minute retention has passed since a pass first saw them (until then the
    item charts and alerts of those minutes read none: they read the buckets)."""
    if LEGACY_ITEM_MINUTES not in db.list_collection_names():
        return []
    db[MAINTENANCE].update_one(
        {"_id": LEGACY_ITEM_MINUTES}, {"$setOnInsert": {"seen_at": now}}, upsert=True
    )
    seen = (db[MAINTENANCE].find_one({"_id": LEGACY_ITEM_MINUTES}) or {})["seen_at"]
    if seen.replace(tzinfo=UTC) > cutoff:
        return [Pruned(LEGACY_ITEM_MINUTES, 0, 0, None, cutoff)]
    removed = db[LEGACY_ITEM_MINUTES].estimated_document_count()
    db.drop_collection(LEGACY_ITEM_MINUTES)
    return [Pruned(LEGACY_ITEM_MINUTES, removed, 0, minute_id(seen), cutoff)]
