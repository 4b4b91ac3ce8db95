"""Active users over days as the Users page reads them (pulse/ingest/active_users.py).

Thirty daily sketches of 1,024 fields take FerretDB about 230 ms to read, past a page's
budget. Each `pulse maintain` pass therefore rolls the days before today up into one
document of packed registers (`days_before`); a page reads it and today's sketch. Until a
pass has run today (or without `pulse maintain`), it reads the days themselves.
"""

from __future__ import annotations

from datetime import date, datetime

from pymongo.database import Database

from pulse.ingest import sketches
from pulse.ingest.active_users import (
    DAY_FORMAT,
    MONTH_DAYS,
    ActiveUsers,
    DaysBefore,
    day_keys,
    days_before,
    with_today,
)
from pulse.store.client import Document
from pulse.store.reads import by_ids
from pulse.store.schema import DAY_SKETCHES, DAYS_BEFORE

USERS_ID = "users"


def active_users(db: Database[Document], today: date) -> ActiveUsers:
    """DAU, WAU, MAU and stickiness up to `today` (estimates)."""
    key = today.strftime(DAY_FORMAT)
    rolled = db[DAYS_BEFORE].find_one({"_id": USERS_ID})
    if rolled is None or rolled.get("today") != key:
        days = _days(db, day_keys(today, MONTH_DAYS))
        return with_today(days_before(days, today), days.get(key, {}))
    before = DaysBefore(
        today=today,
        week=sketches.unpack(rolled["week"]),
        month=sketches.unpack(rolled["month"]),
        daily=list(rolled["daily"]),
    )
    return with_today(before, _days(db, [key]).get(key, {}))


def roll_up(db: Database[Document], today: date, now: datetime) -> None:
    """Store the days before `today` rolled up (one document, replaced each pass)."""
    before = days_before(_days(db, day_keys(today, MONTH_DAYS)), today)
    rolled = {
        "today": today.strftime(DAY_FORMAT),
        "week": sketches.pack(before.week),
        "month": sketches.pack(before.month),
        "daily": before.daily,
        "rolled_at": now,
    }
    db[DAYS_BEFORE].update_one({"_id": USERS_ID}, {"$set": rolled}, upsert=True)


def _days(db: Database[Document], keys: list[str]) -> dict[str, dict[int, int]]:
    """The daily sketches of these days that exist, by day key."""
    return {
        str(doc["_id"]): {int(key[1:]): int(rank) for key, rank in doc["users_hll"].items()}
        for doc in by_ids(db, DAY_SKETCHES, keys, {"users_hll": 1})
        if doc.get("users_hll")
    }
