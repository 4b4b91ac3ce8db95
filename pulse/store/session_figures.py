"""Reading users' sessions: per minute, hour or day, since the start, and those still open.

Every read is by `_id` (pulse/store/schema.py:SESSIONS): a page reads the periods of its range
(a few hundred at most, as the overview does), the document of all sessions, and the minutes
to come for the sessions still open.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl
from pymongo.database import Database

from pulse.ingest.aggregate import TIME
from pulse.ingest.sessions import FIELDS, SessionFigures
from pulse.store.client import Document
from pulse.store.reads import by_ids
from pulse.store.schema import (
    MINUTE,
    PERIOD_LENGTHS,
    SESSIONS,
    SESSIONS_ALL,
    period_id,
    period_starts,
)

_PROJECTION = dict.fromkeys(FIELDS, 1)


def sessions_by_period(
    db: Database[Document], period: str, since: datetime, until: datetime
) -> pl.DataFrame:
    """Session figures per `period` from the one holding `since` to the one holding `until`:
    a column named after the period (its start), then FIELDS; periods without any are 0."""
    starts = period_starts(period, since, until)
    docs = {
        str(doc["_id"]): doc
        for doc in by_ids(db, SESSIONS, [period_id(period, start) for start in starts], _PROJECTION)
    }
    rows = {
        name: [int(docs.get(period_id(period, start), {}).get(name, 0)) for start in starts]
        for name in FIELDS
    }
    return pl.DataFrame(
        {period: starts, **rows}, schema={period: TIME, **dict.fromkeys(FIELDS, pl.Int64)}
    )


def summed(frame: pl.DataFrame) -> SessionFigures:
    """The figures of every row of a `sessions_by_period` frame together."""
    return SessionFigures(**{name: int(frame.get_column(name).sum()) for name in FIELDS})


def all_sessions(db: Database[Document]) -> SessionFigures:
    """Every session since the start (those still open counted as ending where they would)."""
    doc = db[SESSIONS].find_one({"_id": SESSIONS_ALL}, _PROJECTION) or {}
    return SessionFigures(**{name: int(doc.get(name, 0)) for name in FIELDS})


def open_sessions(db: Database[Document], now: datetime, reach: timedelta) -> int:
    """Sessions still open at `now`: those ending in a minute after now's. `reach` is how far
    ahead one can end: the idle time, plus how far ahead of the clock an event may be."""
    after = now + PERIOD_LENGTHS[MINUTE]
    frame = sessions_by_period(db, MINUTE, after, now + reach)
    return int(frame.get_column("ended").sum())
