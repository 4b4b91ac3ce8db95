"""Bring a database written by earlier versions of Pulse up to date, when a pipeline opens.

Each step is idempotent and safe with two consumers starting at once: it reads what the old
layout left and writes the new one only where it is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from pymongo.database import Database

from pulse.store import retention
from pulse.store.client import Document
from pulse.store.schema import (
    BUCKET_VERSION,
    COUNTERS,
    DAY_SKETCHES,
    ENTITIES_NEXT,
    ITEM_BUCKETS,
    LEDGER,
    LEGACY_ITEMS,
    LEGACY_USERS,
    OFFSETS,
    OPEN_BATCHES,
    UNFINISHED,
    USER_BUCKETS,
    item_entity_bucket,
    item_path,
    user_bucket,
    user_path,
)
from pulse.store.statements import Statement
from pulse.store.writes import (
    DLQ_REPLAY_ENTITIES,
    ENTITY_FLUSH,
    mark_open,
    unfinished_batches,
    upsert_guarded,
)

log = logging.getLogger(__name__)


def upgrade(db: Database[Document], user_buckets: int, item_buckets: int) -> None:
    """Every step below, in order (bookkeeping first: moving items reads the ledger)."""
    entity_offsets(db)
    open_batch_markers(db)
    day_sketches_mark(db, datetime.now(UTC))
    move_legacy_users(db, user_buckets)
    move_legacy_items(db, item_buckets)


def entity_offsets(db: Database[Document]) -> None:
    """Offsets stored before entity flushes: every batch wrote its entities, so they stand
    where the counts do."""
    for doc in db[OFFSETS].find({}, {"next_offset": 1, ENTITIES_NEXT: 1}):
        if ENTITIES_NEXT not in doc:
            db[OFFSETS].update_one(
                {"_id": doc["_id"]}, {"$max": {ENTITIES_NEXT: doc["next_offset"]}}
            )


def day_sketches_mark(db: Database[Document], now: datetime) -> None:
    """Databases from before daily sketches: none can be older than the late events of now
    (LATE_HOURS), so their pruning starts there, not at the oldest minute kept."""
    retention.start_mark(db, DAY_SKETCHES, now - retention.LATE_HOURS)


def open_batch_markers(db: Database[Document]) -> None:
    """Ledgers written before open-batch markers: mark their unfinished entries, once."""
    if db[COUNTERS].find_one({"_id": OPEN_BATCHES}) is None:
        for entry in db[LEDGER].find({"status": {"$in": list(UNFINISHED)}}, {"_id": 1}):
            mark_open(db, entry["_id"])
        db[COUNTERS].update_one({"_id": OPEN_BATCHES}, {"$set": {"value": 1}}, upsert=True)


def move_legacy_users(db: Database[Document], buckets: int) -> int:
    """Move per-user documents of an older database into buckets, then drop them; returns
    how many moved. A user already in its bucket is left alone (11000), so a second consumer
    starting at the same time, or a restart halfway, adds nothing twice."""
    if LEGACY_USERS not in db.list_collection_names():
        return 0
    return move_into_buckets(
        db, LEGACY_USERS, USER_BUCKETS, lambda user: user_bucket(user, buckets), user_path
    )


def move_into_buckets(
    db: Database[Document],
    legacy: str,
    collection: str,
    bucket_of: Callable[[str], str],
    path_of: Callable[[str], str],
    increments: dict[str, int] | None = None,
) -> int:
    """Move the documents of `legacy` (one per user or item) to their place in the buckets
    of `collection`, each where no figures of its id are yet, then drop `legacy`; returns how
    many moved. `increments`: what every move adds to its bucket besides (a version)."""
    fields = {"total": 1, "types": 1, "first_seen": 1, "last_seen": 1}
    extra = {"$inc": increments} if increments else {}
    statements: list[Statement] = [
        {
            "q": {"_id": bucket_of(doc["_id"]), path_of(doc["_id"]): {"$exists": False}},
            "u": {"$set": {path_of(doc["_id"]): {k: doc[k] for k in fields if k in doc}}} | extra,
            "upsert": True,
        }
        for doc in db[legacy].find({}, fields)
    ]
    result = upsert_guarded(db, collection, statements)
    db.drop_collection(legacy)
    moved = result.upserted + result.modified
    log.warning(
        "moved %d of %s into %s (%d were there)", moved, legacy, collection, len(statements) - moved
    )
    return moved


class UnfinishedFlushError(RuntimeError):
    """Items cannot move into buckets while an entity flush written before them is unfinished."""


_ENTITY_KINDS: tuple[str | None, ...] = (ENTITY_FLUSH, DLQ_REPLAY_ENTITIES)
"""Ledger kinds that write item figures."""


def move_legacy_items(db: Database[Document], buckets: int) -> int:
    """Move per-item documents of an older database into buckets, then drop them; returns
    how many moved. An item already in its bucket is left alone, so a second consumer
    starting at the same time, or a restart halfway, adds nothing twice; each move raises the
    bucket's version, so a flush that read the bucket before it writes again."""
    if db[LEGACY_ITEMS].find_one({}, {"_id": 1}) is None:
        db.drop_collection(LEGACY_ITEMS)
        return 0
    # A flush cut short wrote some item documents and not others: its replay must find them
    # where it wrote them, which buckets (one watermark for many items) cannot tell apart.
    unfinished = [entry["_id"] for entry in unfinished_batches(db, None, kinds=_ENTITY_KINDS)]
    if unfinished:
        raise UnfinishedFlushError(
            f"database {db.name} holds {len(unfinished)} unfinished entity flush(es) written "
            f"before item buckets ({unfinished[0]}): finish them with the Pulse that wrote "
            "them (a clean `pulse consume` stop), then start this one"
        )
    return move_into_buckets(
        db,
        LEGACY_ITEMS,
        ITEM_BUCKETS,
        lambda item: item_entity_bucket(item, buckets),
        item_path,
        {BUCKET_VERSION: 1},
    )
