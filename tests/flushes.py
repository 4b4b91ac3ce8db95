"""What the bucket tests share: a flush's entity frame, its guard, and a plain writer."""

from __future__ import annotations

from datetime import datetime
from typing import cast

import polars as pl
from pymongo.database import Database

from pulse.ingest.batch import OffsetRange
from pulse.store.client import Document
from pulse.store.contended import Writer
from pulse.store.schema import ENTITY_MARKS
from pulse.store.statements import Guard, Statement
from pulse.store.writes import UpsertResult, upsert_guarded
from tests.fakes import MemoryDatabase


def entity_frame(key: str, totals: dict[str, int], seen: datetime) -> pl.DataFrame:
    """A flush's users or items (`key`: user_id or item_id), every event a view, all at `seen`
    (users also have their event times, as pulse/ingest/aggregate.py gives them)."""
    frame = pl.DataFrame(
        {
            key: list(totals),
            "total": list(totals.values()),
            "types.view": list(totals.values()),
            "types.click": [0] * len(totals),
            "first_seen": [seen] * len(totals),
            "last_seen": [seen] * len(totals),
        }
    )
    if key != "user_id":
        return frame
    seen_ms = int(seen.timestamp() * 1000)
    return frame.with_columns(
        pl.Series("times", [[seen_ms] * n for n in totals.values()], pl.List(pl.Int64))
    )


def flush_guard(partition: int, first: int, last: int) -> Guard:
    """The guard of an entity flush of offsets first..last of one partition of topic 't'."""
    return Guard((OffsetRange(partition, first, last),), ENTITY_MARKS, "t")


def as_database(memory: MemoryDatabase) -> Database[Document]:
    return cast(Database[Document], memory)


def plain_writer(db: Database[Document]) -> Writer:
    """Runs the statements as they come, as BatchWriter's short commands do."""

    def writer(collection: str, statements: list[Statement]) -> UpsertResult:
        return upsert_guarded(db, collection, statements)

    return writer
