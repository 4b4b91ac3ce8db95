"""Read-only queries of the dashboard (and of its benchmark): MongoDB documents -> frames.

Every query reads pre-aggregated documents by `_id` (point or `$in` over the minutes of the
window) or through an index (`total`, `started_at`, `received_at`), never scanning events.
Nothing here writes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
from pymongo.database import Database

from pulse.events import is_id
from pulse.store.client import Document
from pulse.store.leaders import LOW_CAP, candidates, low_doc_ids
from pulse.store.schema import (
    ALERT_STATE,
    ALERTS,
    BUCKET_ITEMS,
    BUCKET_USERS,
    COUNT_MARKS,
    COUNTERS,
    DAY,
    DEAD_FIELDS,
    DEAD_LETTERS,
    ENTITIES_NEXT,
    ENTITY_BATCHES,
    HOUR,
    ITEM_BUCKETS,
    ITEM_BUCKETS_BEFORE,
    ITEM_BUCKETS_COUNTER,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEADERS,
    LEDGER,
    MINUTE,
    MINUTES,
    OFFSETS,
    PERIODS,
    RULE_REJECTIONS,
    TIMELINE,
    TIMELINE_PERIODS,
    TOTALS,
    TOTALS_ID,
    USER_BUCKETS,
    USER_BUCKETS_COUNTER,
    USER_MINUTES,
    WHOLE_RECORD,
    Entity,
    ids_by_bucket,
    item_entity_bucket,
    item_hour_id,
    item_minute_id,
    item_path,
    minute_id,
    minute_of_id,
    offsets_id,
    parse_minute_id,
    period_id,
    period_starts,
    timeline_id,
    user_bucket,
    user_minute_ids_of,
)
from pulse.store.user_figures import unpack

TIME = pl.Datetime("ms", "UTC")
_IN_CHUNK = 500  # FerretDB checks $in linearly; short lists keep it fast
_PROJECTED_PATHS = 16
"""FerretDB applies a projection path by path to each document it returns, copying the result
so far at each: 1,000 item paths over 256 buckets of 4 items took 1.7 s, the buckets read whole
0.08 s. A read wanting more paths than this reads the buckets' items whole."""
RECENT_LOOKBACK = timedelta(days=1)
"""How far back the recent ledger entries and dead letters are looked for."""
_TIMELINE_FIRST_STEP = 4
_TIMELINE_STEP = 64
"""Timeline documents read at a time, newest first, until enough ids are found: 4 first
(the last minutes hold what a page wants, at any rate of batches), then 16, then 64."""


@dataclass(frozen=True)
class Totals:
    """The global figures, one document."""

    events: int = 0
    users: int = 0
    items: int = 0
    dead_lettered: int = 0
    isolated: int = 0
    """Of the dead letters, those made because processing or writing the record failed."""
    first_event: datetime | None = None
    last_event: datetime | None = None
    applied_at: datetime | None = None
    types: dict[str, int] = field(default_factory=dict)
    user_bins: dict[str, int] = field(default_factory=dict)

    @property
    def average_per_user(self) -> float:
        return self.events / self.users if self.users else 0.0

    def since_last_event(self, now: datetime) -> timedelta | None:
        """How long ago the newest counted event happened (grows while nobody produces)."""
        return now - self.last_event if self.last_event else None


def totals(db: Database[Document]) -> Totals | None:
    """The global document, or None before the first batch."""
    doc = db[TOTALS].find_one({"_id": TOTALS_ID}, {COUNT_MARKS: 0})
    if doc is None:
        return None
    return Totals(
        events=int(doc.get("events", 0)),
        users=int(doc.get("users", 0)),
        items=int(doc.get("items", 0)),
        dead_lettered=int(doc.get("dead_lettered", 0)),
        isolated=int(doc.get("isolated", 0)),
        first_event=doc.get("first_event"),
        last_event=doc.get("last_event"),
        applied_at=doc.get("applied_at"),
        types={k: int(v) for k, v in doc.get("types", {}).items()},
        user_bins={k: int(v) for k, v in doc.get("user_bins", {}).items() if v},
    )


def minute_ids(since: datetime, until: datetime) -> list[str]:
    """Ids of the minute documents from `since` to `until` (inclusive), oldest first."""
    start = since.astimezone(UTC).replace(second=0, microsecond=0)
    count = int((until - start).total_seconds() // 60) + 1
    return [minute_id(start + timedelta(minutes=n)) for n in range(max(count, 0))]


def minutes(
    db: Database[Document], since: datetime, until: datetime, sketches: bool = True
) -> pl.DataFrame:
    """Per-minute counts (wide: types.<type>) and estimated active users and items."""
    projection: dict[str, int] = {COUNT_MARKS: 0}
    rows = []
    for doc in by_ids(db, MINUTES, minute_ids(since, until), projection):
        row: dict[str, Any] = {"minute": doc["minute"], "total": int(doc.get("total", 0))}
        row |= {f"types.{k}": int(v) for k, v in doc.get("types", {}).items()}
        if sketches:
            row["active_users"] = int(doc.get("active_users", 0))
            row["active_items"] = int(doc.get("active_items", 0))
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema={"minute": TIME, "total": pl.Int64})
    frame = pl.from_dicts(rows, infer_schema_length=None)
    type_columns = [c for c in frame.columns if c.startswith("types.")]
    return frame.with_columns(pl.col("minute").cast(TIME), pl.col(type_columns).fill_null(0)).sort(
        "minute"
    )


FINEST_PERIODS = ((timedelta(days=1), MINUTE), (timedelta(days=14), HOUR))
"""The finest period a chart over a time range reads: minutes up to a day, hours up to two
weeks, days beyond (a few hundred points at most)."""


def period_for(window: timedelta) -> str:
    """The period a chart over `window` is drawn in (FINEST_PERIODS)."""
    return next((period for longest, period in FINEST_PERIODS if window <= longest), DAY)


def periods(db: Database[Document], period: str, since: datetime, until: datetime) -> pl.DataFrame:
    """Counts per hour or day (wide: types.<type>), in a column named after the period."""
    ids = [period_id(period, start) for start in period_starts(period, since, until)]
    rows = []
    for doc in by_ids(db, PERIODS, ids, {COUNT_MARKS: 0}):
        row: dict[str, Any] = {period: doc["start"], "total": int(doc.get("total", 0))}
        row |= {f"types.{k}": int(v) for k, v in doc.get("types", {}).items()}
        rows.append(row)
    if not rows:
        return pl.DataFrame(schema={period: TIME, "total": pl.Int64})
    frame = pl.from_dicts(rows, infer_schema_length=None)
    type_columns = [c for c in frame.columns if c.startswith("types.")]
    return frame.with_columns(pl.col(period).cast(TIME), pl.col(type_columns).fill_null(0)).sort(
        period
    )


def last_full_minute(db: Database[Document], now: datetime) -> int:
    """Events in the last complete minute of event time."""
    doc = db[MINUTES].find_one({"_id": minute_id(now - timedelta(minutes=1))}, {"total": 1})
    return int(doc["total"]) if doc else 0


def _flatten(doc: Document, key: str) -> dict[str, Any]:
    row: dict[str, Any] = {key: doc["_id"], "total": int(doc.get("total", 0))}
    row |= {f"types.{k}": int(v) for k, v in doc.get("types", {}).items()}
    row |= {name: doc.get(name) for name in ("first_seen", "last_seen")}
    if "sessions" in doc:  # users' (pulse/store/user_figures.py)
        row["sessions"] = int(doc["sessions"])
    return row


def _frame(rows: list[dict[str, Any]], key: str) -> pl.DataFrame:
    if not rows:
        return pl.DataFrame(schema={key: pl.String, "total": pl.Int64})
    frame = pl.from_dicts(rows, infer_schema_length=None)
    type_columns = [c for c in frame.columns if c.startswith("types.")]
    return frame.with_columns(pl.col(type_columns).fill_null(0))


def ranked(
    db: Database[Document], entity: str, key: str, n: int, lowest: bool = False
) -> pl.DataFrame:
    """The `n` users or items with the most (or fewest) interactions.

    Candidates come from the consumer's leader boards (pulse/store/leaders.py) and are ranked by
    their real totals. When the boards cannot answer (none yet, or fewer low-count items than
    asked for), items fall back to an indexed sort (FerretDB runs it as a scan) and users to
    reading every bucket.
    """
    docs = _fewest(db, entity, n) if lowest else _most(db, entity, n)
    if docs is None:
        every = _every_user(db) if entity == Entity.USERS else _every_item(db)
        docs = sorted(every, key=lambda doc: doc["total"], reverse=not lowest)[:n]
    return _frame([_flatten(doc, key) for doc in docs], key)


def _most(db: Database[Document], entity: str, n: int) -> list[Document] | None:
    board = db[LEADERS].find_one({"_id": entity}, {"top": 1}) or {}
    top: dict[str, int] = board.get("top", {})
    docs = _by_ids(db, entity, candidates(top, n, lowest=False))
    if len(docs) < n:
        return None
    return sorted(docs, key=lambda doc: (-doc.get("total", 0), doc["_id"]))[:n]


def _by_ids(db: Database[Document], entity: str, ids: list[str]) -> list[Document]:
    """Users or items by id (from their buckets), each as a document of its own."""
    return users_by_ids(db, ids) if entity == Entity.USERS else items_by_ids(db, ids)


def counter(db: Database[Document], name: str) -> int:
    """The value of a `counters` document (0 before it is first counted)."""
    doc = db[COUNTERS].find_one({"_id": name}, {"value": 1}) or {}
    return int(doc.get("value", 0))


def user_bucket_count(db: Database[Document]) -> int:
    """How many buckets this database keeps users in (pulse/store/writes.py)."""
    counter = db[COUNTERS].find_one({"_id": USER_BUCKETS_COUNTER}) or {}
    return int(counter.get("value", 1))


def item_bucket_count(db: Database[Document]) -> int:
    """How many item x minute buckets a minute this database keeps (pulse/store/writes.py)."""
    counter = db[COUNTERS].find_one({"_id": ITEM_BUCKETS_COUNTER}) or {}
    return int(counter.get("value", ITEM_BUCKETS_BEFORE))


def users_by_ids(db: Database[Document], ids: list[str]) -> list[Document]:
    """Users as documents of their own ({_id, total, types, first_seen, last_seen}), read
    from their buckets with only their own fields."""
    buckets = user_bucket_count(db)
    return _from_buckets(db, USER_BUCKETS, BUCKET_USERS, ids, lambda u: user_bucket(u, buckets))


def _from_buckets(
    db: Database[Document],
    collection: str,
    field: str,
    ids: list[str],
    bucket_of: Callable[[str], str],
) -> list[Document]:
    """Users or items by id, from the buckets `bucket_of` names, with only their own fields
    (`<field>.<id>`)."""
    wanted = ids_by_bucket(ids, bucket_of)
    buckets = list(wanted)
    found: list[Document] = []
    for start in range(0, len(buckets), _IN_CHUNK):
        # Each read names only its own buckets' fields: FerretDB applies a projection field by
        # field to every document it returns (thousands of ids made one page take 50 s).
        chunk = buckets[start : start + _IN_CHUNK]
        fields = {f"{field}.{entity}": 1 for bucket in chunk for entity in wanted[bucket]}
        found += [
            {"_id": entity, **_figures(doc[field][entity])}
            for doc in db[collection].find({"_id": {"$in": chunk}}, fields)
            for entity in wanted[doc["_id"]]
            if entity in doc.get(field, {})
        ]
    return found


def _every_user(db: Database[Document]) -> list[Document]:
    return _every(db, USER_BUCKETS, BUCKET_USERS)


def _every(db: Database[Document], collection: str, field: str) -> list[Document]:
    """Every user or item of the buckets, as a document of its own (reads every bucket)."""
    return [
        {"_id": entity, **_figures(figures)}
        for doc in db[collection].find({}, {field: 1})
        for entity, figures in doc.get(field, {}).items()
    ]


def items_by_ids(db: Database[Document], ids: list[str]) -> list[Document]:
    """Items as documents of their own ({_id, total, types, first_seen, last_seen}), read
    from their buckets with only their own fields."""
    buckets = item_bucket_count(db)
    return _from_buckets(
        db, ITEM_BUCKETS, BUCKET_ITEMS, ids, lambda item: item_entity_bucket(item, buckets)
    )


def _every_item(db: Database[Document]) -> list[Document]:
    return _every(db, ITEM_BUCKETS, BUCKET_ITEMS)


def _figures(stored: Any) -> dict[str, Any]:
    """An entity's figures without its bucket's bookkeeping (the flush that created an item);
    a user's from its string (pulse/store/user_figures.py)."""
    if isinstance(stored, str):
        return unpack(stored).as_document()
    return {name: value for name, value in stored.items() if name != "first_batch"}


def item_totals(db: Database[Document]) -> dict[str, int]:
    """Every item's total (reads every bucket: for reconciliation, not for pages)."""
    return {doc["_id"]: int(doc.get("total", 0)) for doc in _every_item(db)}


def user_totals(db: Database[Document]) -> dict[str, int]:
    """Every user's total (reads every bucket: for reconciliation, not for pages)."""
    return {doc["_id"]: int(doc.get("total", 0)) for doc in _every_user(db)}


def _fewest(db: Database[Document], entity: str, n: int) -> list[Document] | None:
    """Walk the low-total lists upwards, one query for the lists of each total, and the
    items they hold in id order, a few at a time, until `n` are found still at that total.

    After a day every item has outgrown the lists, and a list can hold tens of thousands of
    items: reading each list on its own, or every listed item, took most of the items page."""
    found: list[Document] = []
    for total in range(1, LOW_CAP + 1):
        lists = by_ids(db, LEADERS, low_doc_ids(entity, total), {"ids": 1})
        listed = sorted(key for doc in lists for key in doc.get("ids", {}))
        slice_size = max(2 * n, 10)
        for start in range(0, len(listed), slice_size):
            docs = _by_ids(db, entity, listed[start : start + slice_size])
            kept = [doc for doc in docs if doc.get("total") == total]  # skip moved-on ones
            found += sorted(kept, key=lambda doc: str(doc["_id"]))
            if len(found) >= n:
                return found[:n]
    return None


def entity(db: Database[Document], kind: str, key: str, entity_id: str) -> dict[str, Any] | None:
    """One user or item, flattened, or None (also for text that cannot be an id: it would
    make a field path of the query)."""
    if not is_id(entity_id):
        return None
    docs = _by_ids(db, kind, [entity_id])
    return _flatten(docs[0], key) if docs else None


def item_minutes(
    db: Database[Document], item_id: str, since: datetime, until: datetime
) -> pl.DataFrame:
    """One item's interactions per minute over the window (none for text that cannot be an
    id: it would make a field path of the query)."""
    rows = []
    if is_id(item_id):
        buckets = item_bucket_count(db)
        ids = [item_minute_id(item_id, minute, buckets) for minute in minute_ids(since, until)]
        found = item_minute_figures(db, {doc_id: [item_id] for doc_id in ids})
        rows = [
            {"minute": parse_minute_id(minute_of_id(doc_id)), "total": figures["total"]}
            for (doc_id, _), figures in found.items()
        ]
    if not rows:
        return pl.DataFrame(schema={"minute": TIME, "total": pl.Int64})
    return pl.from_dicts(rows).with_columns(pl.col("minute").cast(TIME)).sort("minute")


ITEM_TREND_PERIODS = ((timedelta(hours=1), MINUTE), (timedelta(days=14), HOUR))
"""The period an item's trend over a time range is drawn in: minutes up to an hour, hours up
to two weeks, and no longer trend (ITEM_TREND_WINDOW). Each point is one bucket read, which
FerretDB decodes whole: 60 minutes or 336 hours stay within the page budget (docs/consumer.md)."""
ITEM_TREND_WINDOW = ITEM_TREND_PERIODS[-1][0]


def item_period_for(window: timedelta) -> str:
    """The period an item's trend over `window` is drawn in (ITEM_TREND_PERIODS)."""
    return next((period for longest, period in ITEM_TREND_PERIODS if window <= longest), HOUR)


def item_trend(
    db: Database[Document], item_id: str, period: str, since: datetime, until: datetime
) -> pl.DataFrame:
    """One item's interactions per minute or per hour (a column named after the period)."""
    if period == MINUTE:
        return item_minutes(db, item_id, since, until)
    rows = []
    if is_id(item_id):
        buckets = item_bucket_count(db)
        starts = period_starts(HOUR, since, until)
        ids = [item_hour_id(item_id, start, buckets) for start in starts]
        rows = [
            {HOUR: doc["hour"], "total": int(doc[BUCKET_ITEMS][item_id])}
            for doc in by_ids(db, ITEM_HOURS, ids, {"hour": 1, item_path(item_id): 1})
            if item_id in doc.get(BUCKET_ITEMS, {})
        ]
    if not rows:
        return pl.DataFrame(schema={HOUR: TIME, "total": pl.Int64})
    return pl.from_dicts(rows).with_columns(pl.col(HOUR).cast(TIME)).sort(HOUR)


def item_minute_figures(
    db: Database[Document], items_by_id: Mapping[str, Iterable[str]]
) -> dict[tuple[str, str], Document]:
    """Items' figures (`total`, `types`) in item x minute buckets, by (bucket id, item); each
    bucket is read with only the items wanted from it."""
    wanted = {doc_id: set(items) for doc_id, items in items_by_id.items()}
    ids = list(wanted)
    found: dict[tuple[str, str], Document] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        paths = {item_path(item): 1 for doc_id in chunk for item in wanted[doc_id]}
        projection = paths if len(paths) <= _PROJECTED_PATHS else {BUCKET_ITEMS: 1}
        for doc in db[ITEM_MINUTES].find({"_id": {"$in": chunk}}, projection):
            for item, figures in doc.get(BUCKET_ITEMS, {}).items():
                if item in wanted[doc["_id"]]:
                    found[(doc["_id"], item)] = figures
    return found


def user_minute_counts(db: Database[Document], minute: str, users: list[str]) -> Counter[str]:
    """Users' interactions in one minute, summed over the minute's `user_minutes` documents of
    every partition (a user's partition is not remembered; one range read on _id)."""
    wanted = set(users)
    paths = {f"counts.{user}": 1 for user in wanted}
    projection = paths if len(paths) <= _PROJECTED_PATHS else {"counts": 1}
    found: Counter[str] = Counter()
    for doc in db[USER_MINUTES].find({"_id": user_minute_ids_of(minute)}, projection):
        found.update({u: n for u, n in doc.get("counts", {}).items() if u in wanted})
    return found


def user_histogram(figures: Totals) -> pl.DataFrame:
    """Users per activity bin [2^k, 2^(k+1)) interactions, from the global document."""
    rows = sorted((int(name[1:]), count) for name, count in figures.user_bins.items())
    return pl.DataFrame(
        {
            "from": [2**k for k, _ in rows],
            "to": [2 ** (k + 1) - 1 for k, _ in rows],
            "users": [count for _, count in rows],
        },
        schema={"from": pl.Int64, "to": pl.Int64, "users": pl.Int64},
    )


def timeline(
    db: Database[Document],
    collection: str,
    since: datetime,
    until: datetime,
    n: int | None = None,
) -> list[str]:
    """Ids of `collection`'s documents first written from `since` to `until` (by the period
    the timeline lists them in), newest first, at most `n`: read by `_id` from the timeline,
    whatever the collection holds."""
    starts = period_starts(TIMELINE_PERIODS[collection], since, until)[::-1]
    found: dict[str, None] = {}
    begin, size = 0, _TIMELINE_FIRST_STEP
    while begin < len(starts) and (n is None or len(found) < n):
        step = [timeline_id(collection, start) for start in starts[begin : begin + size]]
        docs = {doc["_id"]: doc["ids"] for doc in db[TIMELINE].find({"_id": {"$in": step}})}
        for listing in step:
            for doc_id in reversed(docs.get(listing, [])):
                found.setdefault(doc_id)
        begin, size = begin + size, min(4 * size, _TIMELINE_STEP)
    return list(found)[:n]


def _recent(db: Database[Document], collection: str, n: int) -> list[str]:
    now = datetime.now(UTC)
    return timeline(db, collection, now - RECENT_LOOKBACK, now, n)


def ledger(db: Database[Document], n: int = 200) -> pl.DataFrame:
    """The most recent micro-batches of the last day: status, sizes, durations."""
    ids = _recent(db, LEDGER, n)
    cursor = sorted(
        by_ids(db, LEDGER, ids, {"dead_letter_ids": 0}),
        key=lambda doc: doc.get("started_at") or datetime.min.replace(tzinfo=UTC),
        reverse=True,
    )
    rows = [
        {
            "batch": doc["_id"],
            "status": doc.get("status"),
            "attempts": int(doc.get("attempts", 1)),
            "records": int(doc.get("records", 0)),
            "dead_lettered": int(doc.get("dead_lettered", 0)),
            "docs_written": int(doc.get("docs_written", 0)),
            "started_at": doc.get("started_at"),
            "write_seconds": float(doc.get("seconds", {}).get("write", 0.0)),
            "error": doc.get("error"),
        }
        for doc in cursor
    ]
    if not rows:
        return pl.DataFrame(schema={"batch": pl.String, "status": pl.String, "started_at": TIME})
    return pl.from_dicts(rows, infer_schema_length=None).with_columns(
        pl.col("started_at").cast(TIME)
    )


def dead_letter_reasons(db: Database[Document]) -> pl.DataFrame:
    """Records dead-lettered since counting began, by the field their reason names: counted
    with each batch in the global document, so reading them costs the same on any day."""
    doc = db[TOTALS].find_one({"_id": TOTALS_ID}, {DEAD_FIELDS: 1}) or {}
    rows = [
        {"field": "(whole record)" if key == WHOLE_RECORD else key, "count": int(count)}
        for key, count in doc.get(DEAD_FIELDS, {}).items()
        if count
    ]
    if not rows:
        return pl.DataFrame(schema={"field": pl.String, "count": pl.Int64})
    return pl.from_dicts(rows).sort("count", descending=True)


def dead_letter_samples(db: Database[Document], n: int = 20) -> pl.DataFrame:
    """The newest dead letters of the last day with their reason and the start of the raw
    record."""
    docs = by_ids(db, DEAD_LETTERS, _recent(db, DEAD_LETTERS, 2 * n), {})
    newest = sorted(
        (doc for doc in docs if doc.get("status") == "dead"),
        key=lambda doc: (doc.get("received_at") or datetime.min.replace(tzinfo=UTC), doc["_id"]),
        reverse=True,
    )
    cursor = newest[:n]
    rows = [
        {
            "record": doc["_id"],
            "reason": doc.get("reason"),
            "raw": bytes(doc.get("raw") or b"")[:120].decode("utf-8", errors="replace"),
            "received_at": doc.get("received_at"),
        }
        for doc in cursor
    ]
    if not rows:
        return pl.DataFrame(schema={"record": pl.String, "reason": pl.String, "raw": pl.String})
    return pl.from_dicts(rows)


def stored_offsets(db: Database[Document], topic: str) -> dict[int, int]:
    """Next offset to read per partition, as recorded with the applied results."""
    return {
        int(doc["partition"]): int(doc["next_offset"])
        for doc in db[OFFSETS].find({"topic": topic}, {"partition": 1, "next_offset": 1})
    }


def in_ledger(db: Database[Document], entry_id: str) -> bool:
    """Whether a ledger entry exists (a batch or flush whose writing has begun)."""
    return db[LEDGER].find_one({"_id": entry_id}, {"_id": 1}) is not None


def entity_progress(
    db: Database[Document], topic: str, partitions: Iterable[int]
) -> dict[int, tuple[int, list[str]]]:
    """Per partition: the next offset no entity flush holds yet, and the batches listed as
    waiting for one."""
    ids = [offsets_id(topic, partition) for partition in partitions]
    fields = {"partition": 1, "next_offset": 1, ENTITIES_NEXT: 1, ENTITY_BATCHES: 1}
    return {
        int(doc["partition"]): (
            int(doc[ENTITIES_NEXT] if ENTITIES_NEXT in doc else doc["next_offset"]),
            list(doc.get(ENTITY_BATCHES, [])),
        )
        for doc in db[OFFSETS].find({"_id": {"$in": ids}}, fields)
    }


def by_ids(
    db: Database[Document], collection: str, ids: list[Any], projection: dict[str, int]
) -> list[Document]:
    """The documents with these ids, read in short `$in` lists (FerretDB checks them linearly)."""
    docs: list[Document] = []
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        docs += db[collection].find({"_id": {"$in": chunk}}, projection)
    return docs


def alerts(db: Database[Document], since: datetime) -> pl.DataFrame:
    """Alerts fired since `since`, newest first (at most 500)."""
    ids = timeline(db, ALERTS, since, datetime.now(UTC), 500)
    fired = [doc for doc in by_ids(db, ALERTS, ids, {}) if doc.get("fired_at", since) >= since]
    cursor = sorted(fired, key=lambda doc: doc["fired_at"], reverse=True)
    rows = [
        {
            "rule": doc.get("rule_id"),
            "key": doc.get("key"),
            "severity": doc.get("severity"),
            "state": doc.get("state"),
            "value": doc.get("value"),
            "threshold": doc.get("threshold"),
            "window_start": doc.get("window_start"),
            "fired_at": doc.get("fired_at"),
            "resolved_at": doc.get("resolved_at"),
            "delivery": doc.get("delivery", ""),
        }
        for doc in cursor
    ]
    if not rows:
        return pl.DataFrame(schema={"rule": pl.String, "state": pl.String})
    return pl.from_dicts(rows, infer_schema_length=None)


def rule_rejections(db: Database[Document]) -> pl.DataFrame:
    """Stored alert rules the consumer skips because they do not validate, with why."""
    rows = [
        {"rule": doc["_id"], "reason": doc.get("reason"), "seen_at": doc.get("seen_at")}
        for doc in db[RULE_REJECTIONS].find({})
    ]
    if not rows:
        return pl.DataFrame(schema={"rule": pl.String, "reason": pl.String, "seen_at": TIME})
    return pl.from_dicts(rows).sort("rule")


def firing_alerts(db: Database[Document]) -> dict[str, int]:
    """Alerts firing now, counted by rule."""
    counts: dict[str, int] = {}
    for doc in db[ALERT_STATE].find({"firing": {"$ne": None}}, {"rule_id": 1}):
        counts[doc["rule_id"]] = counts.get(doc["rule_id"], 0) + 1
    return counts
