"""Per-item figures in bucket documents, written with the bucket's version as read.

Users live in buckets because a user's events all come from one partition: the consumer that
owns it knows each user's total before a flush. Items get events from every partition, so two
consumers can add the same new item at once, and only the database can say which of them
created it. A bucket write therefore names the version it read (`v`) and raises it:

    filter: {_id: 'b<n>', v: <as read> (or absent), <the flush's guard>}
    update: {$inc: {v: 1, counts}, $min/$max: seen and watermarks,
             $set: {i.<item>.first_batch: <flush id>} for the items the read did not hold}

A write that finds another version (a concurrent flush of other partitions) or the flush's
own watermarks (a replay) matches nothing and collides with its `_id`; the bucket is read
again and either counted as already holding the flush (its new items are those whose
`first_batch` is the flush) or written again from the new read. So the number of new items is
exact however flushes interleave, and each item's total after the write is known without a
second read (the bucket as read, plus the flush's counts), which the leader boards use.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.store.client import Document
from pulse.store.contended import Writer, write_in_rounds
from pulse.store.reads import by_ids
from pulse.store.schema import (
    BUCKET_ITEMS,
    BUCKET_VERSION,
    ITEM_BUCKETS,
    ids_by_bucket,
    item_entity_bucket,
    item_path,
)
from pulse.store.statements import Guard, Statement, as_int64, entity_counts
from pulse.store.writes import UpsertResult, holds

log = logging.getLogger(__name__)


@dataclass
class ItemsWritten:
    """What an entity flush did to the item buckets."""

    new_items: int = 0
    totals: dict[str, int] = field(default_factory=dict)
    """Each item's total right after the flush's write (as stored, for a replayed bucket)."""
    result: UpsertResult = field(default_factory=UpsertResult)


@dataclass(frozen=True)
class _Plan:
    """One bucket's write, from the bucket as read."""

    statement: Statement
    new: int
    totals: dict[str, int]


def _items_of(doc: Document | None) -> dict[str, Any]:
    held: dict[str, Any] = (doc or {}).get(BUCKET_ITEMS, {})
    return held


def plan(
    bucket: str,
    rows: Sequence[dict[str, Any]],
    stored: Document | None,
    guard: Guard,
    types: tuple[str, ...],
    flush_id: str,
) -> _Plan:
    """The write of `rows` (one per item: total, type counts, first/last seen) into `bucket`,
    as `stored` holds it now (None: not written yet)."""
    held = _items_of(stored)
    version = (stored or {}).get(BUCKET_VERSION, {"$exists": False})
    increments: dict[str, int] = {BUCKET_VERSION: 1}
    minima: dict[str, Any] = {}
    maxima: dict[str, Any] = dict(guard.marks_set)
    created: dict[str, str] = {}
    totals: dict[str, int] = {}
    for row in rows:
        item = row["item_id"]
        path = item_path(item)
        increments |= {f"{path}.{name}": n for name, n in entity_counts(row, types).items()}
        minima[f"{path}.first_seen"] = row["first_seen"]
        maxima[f"{path}.last_seen"] = row["last_seen"]
        if item not in held:
            created[f"{path}.first_batch"] = flush_id
        totals[item] = int(held.get(item, {}).get("total", 0)) + row["total"]
    update: dict[str, Any] = {"$inc": as_int64(increments), "$min": minima, "$max": maxima}
    if created:
        update["$set"] = created
    statement = {
        "q": {"_id": bucket, BUCKET_VERSION: version, **guard.filter},
        "u": update,
        "upsert": True,
    }
    return _Plan(statement, len(created), totals)


def by_bucket(items: pl.DataFrame, buckets: int) -> dict[str, list[dict[str, Any]]]:
    """The items' rows by the bucket each lives in."""
    rows = {row["item_id"]: row for row in items.iter_rows(named=True)}
    grouped = ids_by_bucket(rows, lambda item: item_entity_bucket(item, buckets))
    return {bucket: [rows[item] for item in ids] for bucket, ids in grouped.items()}


def held_by(stored: Document, items: Iterable[str], flush_id: str) -> tuple[int, dict[str, int]]:
    """A bucket already holding the flush: how many of `items` the flush created, and each
    one's total as stored."""
    held = _items_of(stored)
    figures = [(item, held.get(item, {})) for item in items]
    new = sum(1 for _, doc in figures if doc.get("first_batch") == flush_id)
    return new, {item: int(doc.get("total", 0)) for item, doc in figures}


def write_items(
    db: Database[Document],
    items: pl.DataFrame,
    buckets: int,
    guard: Guard,
    types: tuple[str, ...],
    flush_id: str,
    writer: Writer,
) -> ItemsWritten:
    """Write a flush's items (one row each) into their buckets, reading each bucket first
    (pulse/store/contended.py)."""
    rows = by_bucket(items, buckets)
    done = ItemsWritten(result=UpsertResult())
    write_in_rounds(
        ITEM_BUCKETS,
        list(rows),
        lambda chosen: _write_round(
            db, {bucket: rows[bucket] for bucket in chosen}, guard, types, flush_id, writer, done
        ),
    )
    return done


def _write_round(
    db: Database[Document],
    rows: dict[str, list[dict[str, Any]]],
    guard: Guard,
    types: tuple[str, ...],
    flush_id: str,
    writer: Writer,
    done: ItemsWritten,
) -> set[str]:
    """Read the buckets, write those not holding the flush yet; adds what happened to `done`
    and returns the buckets whose write found another version."""
    projection = {BUCKET_ITEMS: 1, BUCKET_VERSION: 1, guard.key[0]: 1}
    stored = {doc["_id"]: doc for doc in by_ids(db, ITEM_BUCKETS, sorted(rows), projection)}
    plans: dict[str, _Plan] = {}
    for bucket, held in sorted(rows.items()):
        doc = stored.get(bucket)
        if holds(doc, guard):
            new, totals = held_by(doc, (row["item_id"] for row in held), flush_id)
            done.new_items += new
            done.totals |= totals
            done.result.already_applied += 1
        else:
            plans[bucket] = plan(bucket, held, doc, guard, types, flush_id)
    result = writer(ITEM_BUCKETS, [p.statement for p in plans.values()])
    refused = set(result.refused_ids)
    done.result.add_writes(result)
    for bucket, written in plans.items():
        if bucket not in refused:
            done.new_items += written.new
            done.totals |= written.totals
    return refused
