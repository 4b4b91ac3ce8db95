"""MongoDB writes of the pipeline: aggregates, batch ledger, offsets, dead letters.

Only operations MongoDB and FerretDB 1.24 both support (see docs/consumer.md): `update` with
upsert, `$inc/$min/$max/$setOnInsert`, finds on `_id`, single-field indexes.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeGuard

import bson
from pymongo import UpdateOne
from pymongo.database import Database
from pymongo.errors import PyMongoError

from pulse.config import ENV_PREFIX, SettingsError
from pulse.ingest import sketches
from pulse.ingest.batch import OffsetRange, entity_flush_id, ranges_of
from pulse.store import leaders
from pulse.store.client import Document
from pulse.store.schema import (
    COUNT_MARKS,
    COUNTERS,
    ENTITIES_NEXT,
    ENTITY_BATCHES,
    INDEXES,
    ITEM_BUCKETS,
    ITEM_BUCKETS_BEFORE,
    ITEM_BUCKETS_COUNTER,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEADERS,
    LEDGER,
    LOST_RECORDS,
    MINUTE_SKETCHES,
    MINUTES,
    OFFSETS,
    OPEN_BATCHES,
    REFUSED_FLUSHES,
    RULE_REJECTIONS,
    TIMELINE,
    UNFINISHED,
    USER_BUCKETS,
    USER_BUCKETS_COUNTER,
    offsets_id,
    timeline_id,
)
from pulse.store.statements import Guard, Statement

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000
DLQ_REPLAY = "dlq-replay"
"""Ledger kind of a dead-letter replay (its batches are not Kafka offset ranges)."""
DLQ_REPLAY_ENTITIES = "dlq-replay-entities"
"""Ledger kind of a dead-letter replay's entity documents (written with it, never re-read)."""
ENTITY_FLUSH = "entities"
"""Ledger kind of an entity flush (pulse/pipeline/entities.py)."""
REPLAY_ORDER: tuple[str | None, ...] = (None, ENTITY_FLUSH)
"""Unfinished Kafka batches (no kind) are replayed before unfinished entity flushes."""
_CHUNK = 1_000
"""Statements per update command at most."""
CHUNK_BYTES = 8 * 1_024 * 1_024
"""Encoded statements per update command at most: half of MongoDB's 16 MiB command limit,
whatever the documents hold (a catch-up flush of a thousand minute sketches is 40 MB)."""
STATEMENT_BYTES = 16 * 1_024 * 1_024 - 64 * 1_024
"""The largest statement a command can carry (16 MiB, less room for the command around it)."""


class Rejected(Protocol):
    """A stored alert rule that does not validate (pulse/alerts/rules.py:Rejection)."""

    @property
    def rule_id(self) -> str: ...

    @property
    def reason(self) -> str: ...


class WriteFailedError(RuntimeError):
    """The database refused a write for a reason other than 'already applied'."""


class StatementTooLargeError(WriteFailedError):
    """One statement is larger than any command can carry."""


def chunks(
    statements: Sequence[Statement], max_count: int = _CHUNK, max_bytes: int = CHUNK_BYTES
) -> Iterator[list[Statement]]:
    """The statements in commands of at most `max_count` statements and `max_bytes` encoded."""
    chunk: list[Statement] = []
    size = 0
    for statement in statements:
        encoded = len(bson.encode(statement))
        if encoded > STATEMENT_BYTES:
            raise StatementTooLargeError(
                f"a statement for {statement.get('q', {}).get('_id')!r} is {encoded:,} bytes, "
                f"over the {STATEMENT_BYTES:,}-byte limit of one command"
            )
        if chunk and (len(chunk) >= max_count or size + encoded > max_bytes):
            yield chunk
            chunk, size = [], 0
        chunk.append(statement)
        size += encoded
    if chunk:
        yield chunk


@dataclass
class UpsertResult:
    """What one collection's statements did."""

    statements: int = 0
    upserted: int = 0
    modified: int = 0
    already_applied: int = 0
    """Documents that already held this batch (a replay); their statements changed nothing."""
    upserted_ids: list[Any] = field(default_factory=list)
    refused_ids: list[Any] = field(default_factory=list)
    """The `_id`s of the statements that matched nothing and collided (`already_applied`)."""

    def add_writes(self, other: UpsertResult) -> None:
        """Add what `other`'s statements wrote; what they refused is the caller's to retry."""
        self.statements += other.statements
        self.upserted += other.upserted
        self.modified += other.modified
        self.upserted_ids += other.upserted_ids


def ensure_indexes(db: Database[Document]) -> None:
    """Create the indexes the readers rely on (idempotent)."""
    for collection, indexes in INDEXES.items():
        for keys in indexes:
            db[collection].create_index(keys)


MARKER_GRACE = timedelta(minutes=10)
"""How long an open-batch marker may wait for its ledger entry. `ledger_begin` writes the two
milliseconds apart; a marker this old without its entry was left by a crash between them."""


def mark_open(db: Database[Document], batch_id: str) -> None:
    """Mark a ledger entry as begun and not yet finished (`open_batches`)."""
    # A fresh token each time: a reader removes the marker it read, never one opened again
    # since (`_settle_markers`).
    opened = {"token": uuid.uuid4().hex, "opened_at": datetime.now(UTC)}
    db[OPEN_BATCHES].update_one({"_id": batch_id}, {"$set": opened}, upsert=True)


def _settle_markers(
    db: Database[Document], markers: list[dict[str, Any]], entries: dict[str, dict[str, Any]]
) -> None:
    """Remove the markers whose entry is done, or missing past MARKER_GRACE.

    A missing entry may be one being begun right now, between its marker and its entry (by
    another member): removing its marker then would hide that entry from every replay if its
    writer died before finishing it. Each marker is removed only as it was read (its token),
    so one opened again meanwhile (a retry beginning) stays.
    """
    stale_before = datetime.now(UTC) - MARKER_GRACE
    for marker in markers:
        entry = entries.get(marker["_id"])
        if entry is not None and entry.get("status") in UNFINISHED:
            continue
        opened_at = marker.get("opened_at")
        if entry is None and opened_at is not None and opened_at > stale_before:
            continue
        as_read = {"token": marker["token"]} if "token" in marker else {"token": {"$exists": False}}
        db[OPEN_BATCHES].delete_one({"_id": marker["_id"], **as_read})


def upsert_guarded(
    db: Database[Document],
    collection: str,
    statements: Sequence[Statement],
    *,
    max_count: int = _CHUNK,
    before_each: Callable[[], None] | None = None,
) -> UpsertResult:
    """Run guarded upserts, in commands of at most `max_count` statements (`before_each` is
    called before each command); a duplicate-key error means 'this document already has the
    batch'.

    MongoDB reports such errors per statement and runs the rest; FerretDB 1.24 stops the whole
    command at the first one. Both are handled the same way: the chunk is re-run statement by
    statement, which is safe because every statement is guarded.
    """
    result = UpsertResult(statements=len(statements))
    for chunk in chunks(statements, max_count):
        if before_each is not None:
            before_each()
        reply = db.command("update", collection, updates=chunk, ordered=False)
        errors = reply.get("writeErrors", [])
        if not errors:
            _count(result, reply)
            continue
        _raise_unless_duplicates(collection, errors)
        for statement in chunk:
            _upsert_one(db, collection, statement, result)
    return result


def _upsert_one(
    db: Database[Document], collection: str, statement: Statement, result: UpsertResult
) -> None:
    reply = db.command("update", collection, updates=[statement], ordered=True)
    errors = reply.get("writeErrors", [])
    if errors:
        _raise_unless_duplicates(collection, errors)
        result.already_applied += 1
        result.refused_ids.append(statement["q"]["_id"])
    else:
        _count(result, reply)


def _count(result: UpsertResult, reply: dict[str, Any]) -> None:
    upserted = reply.get("upserted", [])
    result.upserted += len(upserted)
    result.upserted_ids += [entry["_id"] for entry in upserted]
    result.modified += int(reply.get("nModified", 0))


def _raise_unless_duplicates(collection: str, errors: list[dict[str, Any]]) -> None:
    other = [error for error in errors if error.get("code") != DUPLICATE_KEY]
    if other:
        first = other[0]
        raise WriteFailedError(
            f"{collection}: write refused (code {first.get('code')}): {first.get('errmsg')}"
        )


def settle_user_buckets(db: Database[Document], wanted: int) -> int:
    """The number of user buckets of this database: `wanted` (PULSE_MONGO_USER_BUCKETS) when
    no user is stored yet, otherwise the number it was first written with, which must match."""
    return _settle_buckets(db, USER_BUCKETS_COUNTER, (USER_BUCKETS,), wanted, "users", None)


def settle_item_buckets(db: Database[Document], wanted: int) -> int:
    """The number of item buckets a minute and an hour of this database: `wanted`
    (PULSE_MONGO_ITEM_BUCKETS) when none is stored yet, otherwise the number it was
    first written with (ITEM_BUCKETS_BEFORE if it holds no counter), which must match."""
    return _settle_buckets(
        db,
        ITEM_BUCKETS_COUNTER,
        (ITEM_MINUTES, ITEM_HOURS, ITEM_BUCKETS),
        wanted,
        "item x minute and item x hour figures",
        ITEM_BUCKETS_BEFORE,
    )


def _settle_buckets(
    db: Database[Document],
    counter_id: str,
    collections: tuple[str, ...],
    wanted: int,
    held: str,
    uncounted: int | None,
) -> int:
    """Each counter is named after its MongoSettings field (`counter_id`), which names the
    setting in the error. `uncounted`: the number a collection written before its counter
    existed holds (None: take `wanted`)."""
    counter = db[COUNTERS].find_one({"_id": counter_id}) or {}
    stored = counter.get("value")
    if stored == wanted:
        return wanted
    written = any(db[name].find_one({}, {"_id": 1}) is not None for name in collections)
    stored = stored if stored is not None else (uncounted if written else None)
    if written and stored is not None and stored != wanted:
        raise SettingsError(
            f"{ENV_PREFIX}MONGO_{counter_id.upper()}={wanted}, but database {db.name} holds "
            f"{held} in {stored} buckets: set it to {stored}, or use a new "
            f"{ENV_PREFIX}MONGO_DATABASE"
        )
    db[COUNTERS].update_one({"_id": counter_id}, {"$set": {"value": wanted}}, upsert=True)
    return wanted


def refresh_minute_estimates(db: Database[Document], minute_ids: list[str]) -> int:
    """Store each touched minute's active users and items, estimated from its merged
    sketches, so readers skip the 2 x 1,024 registers (`$max`: estimates only grow)."""
    written = 0
    for doc in db[MINUTE_SKETCHES].find({"_id": {"$in": minute_ids}}, {COUNT_MARKS: 0}):
        estimates = {
            "active_users": round(sketches.estimate(doc.get("users_hll", {}))),
            "active_items": round(sketches.estimate(doc.get("items_hll", {}))),
        }
        result = db[MINUTES].update_one({"_id": doc["_id"]}, {"$max": estimates})
        written += result.modified_count
    return written


def update_leaders(
    db: Database[Document],
    entity: str,
    totals: dict[Any, int],
    added: dict[Any, int] | None = None,
) -> int:
    """Offer a batch's touched documents (`totals`: id → total now) to the leader boards;
    with `added` (the batch's counts) also keep the low-total lists. Returns docs changed."""
    board = db[LEADERS].find_one({"_id": entity}, {"top": 1}) or {}
    top: dict[str, int] = board.get("top", {})
    statements = [
        leaders.leader_update(entity, totals, top),
        leaders.top_prune(entity, top, added=min(len(totals), leaders.TOP_K)),
    ]
    if added is not None:
        statements += leaders.low_updates(entity, totals, added)
    requests = [UpdateOne(s["q"], s["u"], upsert=bool(s.get("upsert"))) for s in statements if s]
    if not requests:
        return 0
    result = db[LEADERS].bulk_write(requests, ordered=True)
    return result.modified_count + result.upserted_count


def holds(doc: Document | None, guard: Guard) -> TypeGuard[Document]:
    """Whether a bucket as read holds the flush `guard` marks already (a replay of it)."""
    key, last = guard.key
    return doc is not None and watermark(doc, key) >= last


def watermark(doc: Document, dotted: str) -> int:
    value: Any = doc
    for part in dotted.split("."):
        value = value.get(part, {}) if isinstance(value, dict) else {}
    return int(value) if isinstance(value, int) else -1


# --- offsets ---------------------------------------------------------------------------


def advance_offsets(
    db: Database[Document], topic: str, ranges: Iterable[OffsetRange], batch_id: str | None = None
) -> None:
    """Record that everything up to each range's end is applied (`$max`: never moves back).

    With `batch_id`, also list the batch as waiting for its entity flush
    (`entity_batches`; a replay may list it twice, readers drop repeats).
    """
    statements = []
    for r in ranges:
        update: dict[str, Any] = {
            "$max": {"next_offset": r.last + 1},
            "$setOnInsert": {"topic": topic, "partition": r.partition, ENTITIES_NEXT: r.first},
        }
        if batch_id is not None:
            update["$push"] = {ENTITY_BATCHES: batch_id}
        statements.append(
            {"q": {"_id": offsets_id(topic, r.partition)}, "u": update, "upsert": True}
        )
    reply = db.command("update", OFFSETS, updates=statements, ordered=False)
    _raise_unless_duplicates(OFFSETS, reply.get("writeErrors", []))


def advance_entity_offsets(
    db: Database[Document], topic: str, ranges: Sequence[OffsetRange]
) -> None:
    """Record that an entity flush covered `ranges`: its batches leave `entity_batches`.

    The flushed batches are removed by name (`$pullAll`), never by writing back what is left,
    so a batch listed meanwhile by another writer (a retry, a member replaying a split batch)
    stays listed.
    """
    flushed = {r.partition: r.last for r in ranges}
    ids = [offsets_id(topic, partition) for partition in flushed]
    statements = []
    for doc in db[OFFSETS].find({"_id": {"$in": ids}}, {"partition": 1, ENTITY_BATCHES: 1}):
        partition = int(doc["partition"])
        last = flushed[partition]
        covered = [
            listed
            for listed in dict.fromkeys(doc.get(ENTITY_BATCHES, []))
            if all(r.last <= last for r in ranges_of(listed) if r.partition == partition)
        ]
        update: dict[str, Any] = {"$max": {ENTITIES_NEXT: last + 1}}
        if covered:
            update["$pullAll"] = {ENTITY_BATCHES: covered}
        statements.append({"q": {"_id": doc["_id"]}, "u": update})
    if statements:
        reply = db.command("update", OFFSETS, updates=statements, ordered=False)
        _raise_unless_duplicates(OFFSETS, reply.get("writeErrors", []))


# --- timeline ----------------------------------------------------------------------------


def file_in_timeline(
    db: Database[Document], collection: str, moment: datetime, ids: Sequence[str]
) -> None:
    """List `ids` of `collection` under the period of `moment` (docs: schema.TIMELINE). Done
    before the documents are written, so none exists unlisted; listing one twice is harmless."""
    if ids:
        db[TIMELINE].update_one(
            {"_id": timeline_id(collection, moment)},
            {"$addToSet": {"ids": {"$each": list(ids)}}},
            upsert=True,
        )


# --- ledger ----------------------------------------------------------------------------


def ledger_begin(
    db: Database[Document],
    batch_id: str,
    topic: str,
    ranges: Sequence[OffsetRange],
    records: int,
    extra: dict[str, Any] | None = None,
) -> int:
    """Record the batch (status 'writing') before any aggregate is touched; returns the attempt."""
    now = datetime.now(UTC)
    mark_open(db, batch_id)  # first: a marker without its entry is ignored, never the reverse
    file_in_timeline(db, LEDGER, now, [batch_id])
    doc = db[LEDGER].find_one_and_update(
        {"_id": batch_id},
        {
            "$setOnInsert": {
                "topic": topic,
                "ranges": [
                    {"partition": r.partition, "first": r.first, "last": r.last} for r in ranges
                ],
                "partitions": [r.partition for r in ranges],
                "records": records,
                "started_at": now,
                **(extra or {}),
            },
            "$set": {"status": "writing", "updated_at": now},
            "$inc": {"attempts": 1},
        },
        upsert=True,
        return_document=True,
    )
    return int(doc["attempts"]) if doc else 1


def stale_partitions(db: Database[Document], topic: str, ranges: Sequence[OffsetRange]) -> set[int]:
    """Partitions of a new batch that MongoDB already counts past the batch's first offset:
    another member (a member that lost them and did not notice) applied those records."""
    first = {r.partition: r.first for r in ranges}
    ids = [offsets_id(topic, partition) for partition in first]
    return {
        int(doc["partition"])
        for doc in db[OFFSETS].find({"_id": {"$in": ids}}, {"partition": 1, "next_offset": 1})
        if int(doc["next_offset"]) > first[int(doc["partition"])]
    }


def ledger_stale(db: Database[Document], batch_id: str, partitions: Iterable[int]) -> None:
    """Mark a batch not written because others counted some of its partitions first."""
    db[LEDGER].update_one(
        {"_id": batch_id},
        {
            "$set": {
                "status": "stale",
                "stale_partitions": sorted(partitions),
                "updated_at": datetime.now(UTC),
            }
        },
    )
    db[OPEN_BATCHES].delete_one({"_id": batch_id})


def ledger_split(
    db: Database[Document],
    topic: str,
    batch_id: str,
    ranges: Sequence[OffsetRange],
    parts: list[str],
    error: str,
) -> None:
    """Mark a batch written in `parts` instead (their entries exist already): it is neither
    replayed nor re-read for an entity flush any more; its parts are."""
    db[LEDGER].update_one(
        {"_id": batch_id},
        {
            "$set": {
                "status": "split",
                "parts": parts,
                "error": error[:2_000],
                "updated_at": datetime.now(UTC),
            }
        },
    )
    unlist = [
        {
            "q": {"_id": offsets_id(topic, r.partition)},
            "u": {"$pullAll": {ENTITY_BATCHES: [batch_id]}},
        }
        for r in ranges
    ]
    reply = db.command("update", OFFSETS, updates=unlist, ordered=False)
    _raise_unless_duplicates(OFFSETS, reply.get("writeErrors", []))
    db[OPEN_BATCHES].delete_one({"_id": batch_id})


def ledger_refuse_flush(
    db: Database[Document], topic: str, flush_id: str, ranges: Sequence[OffsetRange], error: str
) -> None:
    """Give up an entity flush of one batch that fails for what its records hold: its user and
    item figures are left out, and the flushes after it go on."""
    now = datetime.now(UTC)
    db[LEDGER].update_one(
        {"_id": flush_id},
        {
            "$set": {"status": "refused", "error": error[:2_000], "updated_at": now},
            "$setOnInsert": {
                "topic": topic,
                "kind": ENTITY_FLUSH,
                "ranges": [
                    {"partition": r.partition, "first": r.first, "last": r.last} for r in ranges
                ],
                "partitions": [r.partition for r in ranges],
                "started_at": now,
            },
        },
        upsert=True,
    )
    advance_entity_offsets(db, topic, ranges)
    db[COUNTERS].update_one({"_id": REFUSED_FLUSHES}, {"$inc": {"value": 1}}, upsert=True)
    db[OPEN_BATCHES].delete_one({"_id": flush_id})


def record_unreadable_flush(
    db: Database[Document],
    topic: str,
    ranges: Sequence[OffsetRange],
    batches: list[str],
    error: Exception,
) -> str:
    """A ledger entry for the entity flush of waiting batches Kafka no longer holds, so that
    it can be named and resolved; returns its id."""
    flush_id = entity_flush_id(topic, ranges)
    extra = {"kind": ENTITY_FLUSH, "batches": batches}
    ledger_begin(db, flush_id, topic, ranges, 0, extra)
    ledger_fail(db, flush_id, f"cannot be replayed: {error}")
    return flush_id


class ResolveError(ValueError):
    """The ledger entry cannot be resolved as lost (unknown, or not unfinished)."""


def resolve_lost(db: Database[Document], entry_id: str, by: str) -> Document:
    """Record an unfinished ledger entry's records as lost, and let counting go on after it:
    a batch's partitions resume after its ranges, an entity flush's batches are unlisted. The
    documents it wrote before it stopped keep what they hold. Returns the entry."""
    entry = db[LEDGER].find_one({"_id": entry_id})
    if entry is None:
        raise ResolveError(f"no ledger entry {entry_id!r} (pulse ledger list shows them)")
    if entry.get("status") not in UNFINISHED:
        raise ResolveError(f"{entry_id} is {entry.get('status')}, not unfinished: nothing to do")
    now = datetime.now(UTC)
    claimed = db[LEDGER].find_one_and_update(
        {"_id": entry_id, "status": {"$in": list(UNFINISHED)}},
        {"$set": {"status": "lost", "resolved_at": now, "resolved_by": by, "updated_at": now}},
        return_document=True,
    )
    if claimed is None:  # resolved by someone else meanwhile
        raise ResolveError(f"{entry_id} was resolved meanwhile")
    ranges = [OffsetRange(r["partition"], r["first"], r["last"]) for r in entry["ranges"]]
    if entry.get("kind") == ENTITY_FLUSH:
        advance_entity_offsets(db, entry["topic"], ranges)
    elif entry.get("kind") is None:
        advance_offsets(db, entry["topic"], ranges)
        records = int(entry.get("records", 0))
        db[COUNTERS].update_one({"_id": LOST_RECORDS}, {"$inc": {"value": records}}, upsert=True)
    db[OPEN_BATCHES].delete_one({"_id": entry_id})
    return claimed


def ledger_finish(db: Database[Document], batch_id: str, stats: dict[str, Any]) -> None:
    """Mark the batch applied, with its counts and durations."""
    now = datetime.now(UTC)
    db[LEDGER].update_one(
        {"_id": batch_id},
        {
            "$set": {
                **stats,
                "status": "applied",
                "error": None,
                "finished_at": now,
                "updated_at": now,
            }
        },
    )
    db[OPEN_BATCHES].delete_one({"_id": batch_id})  # last: an applied entry's marker is ignored


def ledger_fail(db: Database[Document], batch_id: str, error: str) -> None:
    """Record why the batch failed (best effort: the database may be the thing that failed)."""
    try:
        db[LEDGER].update_one(
            {"_id": batch_id},
            {"$set": {"status": "failed", "error": error[:2_000], "updated_at": datetime.now(UTC)}},
        )
    except PyMongoError:  # also ConnectionFailure: the batch's own error must still surface
        log.exception("could not record the failure of batch %s", batch_id)


def unfinished_batches(
    db: Database[Document],
    topic: str | None,
    partitions: Iterable[int] | None = None,
    *,
    kinds: tuple[str | None, ...] = REPLAY_ORDER,
) -> list[dict[str, Any]]:
    """Ledger entries of `topic` (None: any) and `kinds` (None: Kafka batches; ENTITY_FLUSH:
    entity flushes) not applied yet ('writing' or 'failed') touching `partitions` (or any): by
    kind in the order
    given, then oldest first. The default replays batches before the flushes that hold them.

    Reads the few open-batch markers, then their ledger entries by `_id`; markers left by a
    crash between two steps (entry already applied, or missing for long) are removed.
    """
    markers = list(db[OPEN_BATCHES].find({}, {"token": 1, "opened_at": 1}))
    if not markers:
        return []  # the usual case: and FerretDB would scan the ledger for an empty $in
    ids = [marker["_id"] for marker in markers]
    entries = {entry["_id"]: entry for entry in db[LEDGER].find({"_id": {"$in": ids}})}
    _settle_markers(db, markers, entries)
    wanted = None if partitions is None else set(partitions)
    pending = [
        entry
        for entry in entries.values()
        if entry.get("status") in UNFINISHED
        and (topic is None or entry.get("topic") == topic)
        and entry.get("kind") in kinds
        and (wanted is None or wanted & set(entry["partitions"]))
    ]
    return sorted(
        pending,
        key=lambda entry: (
            kinds.index(entry.get("kind")),
            min(r["first"] for r in entry["ranges"]),
        ),
    )


def record_rule_rejections(db: Database[Document], rejected: Sequence[Rejected]) -> None:
    """Keep `alert_rule_rejections` to the stored rules rejected now (one document each)."""
    now = datetime.now(UTC)
    for rejection in rejected:
        db[RULE_REJECTIONS].update_one(
            {"_id": rejection.rule_id},
            {"$set": {"reason": rejection.reason, "seen_at": now}},
            upsert=True,
        )
    db[RULE_REJECTIONS].delete_many({"_id": {"$nin": [r.rule_id for r in rejected]}})


def next_sequence(db: Database[Document], name: str) -> int:
    """A counter that only grows (atomic `$inc`)."""
    doc = db[COUNTERS].find_one_and_update(
        {"_id": name}, {"$inc": {"value": 1}}, upsert=True, return_document=True
    )
    return int(doc["value"]) if doc else 1
