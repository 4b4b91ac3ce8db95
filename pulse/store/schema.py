"""The MongoDB document layout: every collection name, document-id format and index, once.

docs/consumer.md describes what each collection holds. Writers, readers, the dashboard, the
benchmarks and the tests all take names and ids from here.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from pymongo import ASCENDING, DESCENDING

from pulse.ingest.aggregate import MINUTE_FORMAT

# --- aggregates (written by the consumer, read by the dashboard) ---------------------------


class Entity:
    """The kinds of entity with figures of their own. A kind's name is its leader board's
    `_id` (`leaders`) and the name of its figures in ledger entries; it names no collection
    (the figures live in USER_BUCKETS and ITEM_BUCKETS)."""

    USERS: Final = "users"
    ITEMS: Final = "items"


LEGACY_USERS = "users"
"""One document per user, as databases written before user buckets hold them; the consumer
moves them into buckets when it starts (pulse/store/migrations.py:move_legacy_users)."""
USER_BUCKETS = "user_buckets"
"""Per-user figures, many users per document: `_id` = 'b<bucket>', `u.<user id>` = the
user's `total`, `types.<type>`, `first_seen`, `last_seen` (ids hold no '.' or '$')."""
LEGACY_ITEMS = "items"
"""One document per item, as databases written before item buckets hold them; the consumer
moves them into buckets when it starts (pulse/store/migrations.py:move_legacy_items)."""
ITEM_BUCKETS = "item_buckets"
"""Per-item figures, many items per document: `_id` = 'b<bucket>' (item_entity_bucket), `v`
= the bucket's version, `i.<item id>` = the item's `total`, `types.<type>`, `first_seen`,
`last_seen` and `first_batch` (the entity flush that created it), `ws`. Items get events from
every partition, so writers guard each bucket with its version as read (optimistic
concurrency): that is what makes "this flush created the item" exact across consumers."""
BUCKET_VERSION = "v"
"""The version field of an item bucket: every write raises it by one."""
MINUTES = "minutes"
PERIODS = "periods"
"""The global per-minute counts summed per hour and per day (MongoDB's computed pattern),
written with each micro-batch beside its minutes: `_id` = '<period>|<period key>', e.g.
'hour|2026-12-02T01Z', 'day|2026-12-02'; `start`, `total`, `types.<type>`, `wm`. A chart
over weeks reads a few hundred of them, not tens of thousands of minutes."""
ITEM_MINUTES = "minute_items"
"""Per-item figures of each minute, many items per document: `_id` = '<minute id>|b<bucket>'
(item_minute_id), `minute`, `i.<item id>` = the item's `total` and `types.<type>`, `ws`.
A flush writes at most PULSE_MONGO_ITEM_BUCKETS of them a minute, not one per item."""
ITEM_BUCKETS_BEFORE = 256
"""Item x minute buckets per minute of databases written before the number was a setting
(PULSE_MONGO_ITEM_BUCKETS), which hold no ITEM_BUCKETS_COUNTER."""
ITEM_HOURS = "hour_items"
"""Per-item totals of each hour, for item trends over days: `_id` = '<hour key>|b<bucket>'
(item_hour_id), `hour`, `i.<item id>` = the item's total, `ws`. In a quarter as many buckets
as `minute_items` (PULSE_MONGO_ITEM_BUCKETS / ITEM_HOURS_SHARE); kept as long as the hourly
sums (PULSE_RETENTION_HOUR_DAYS)."""
LEGACY_ITEM_MINUTES = "item_minutes"
"""One document per item and minute, as databases written before item x minute buckets hold
them: `pulse maintain` drops the collection once minute retention has passed since it first
saw it (pulse/store/retention.py:drop_legacy_item_minutes)."""
USER_MINUTES = "user_minutes"
MINUTE_SKETCHES = "minute_sketches"
SESSIONS = "sessions"
"""Users' sessions (pulse/ingest/sessions.py) per minute, hour and day, and since the start:
`_id` = period_id ('minute|2026-12-02T01:05Z', 'hour|2026-12-02T01Z', 'day|2026-12-02') or
SESSIONS_ALL; `started` (sessions whose first event is in the period), and of the sessions
ending in it (their latest event plus the idle time): `ended`, their `events`, `length_ms`
(the sum of their lengths) and `bounces` (those of one event); `ws`. Written by the entity
flush, before its users. A period to come holds the sessions still open that end in it unless
an event of their user follows."""
SESSIONS_ALL = "all"
"""The `sessions` document of every session since the start."""
DAY_SKETCHES = "day_sketches"
"""Per UTC day, the HyperLogLog registers of its active users (DAU, WAU, MAU): `_id` = the
day ('2026-12-02'), `users_hll.r<index>` = rank, `ws`. Written by the entity flush beside the
minute sketches; kept MONTH_DAYS + 1 days (pulse/ingest/active_users.py)."""
DAYS_BEFORE = "days_before"
"""One document, `_id` = 'users': the day sketches of the month before `today` rolled up by
the last `pulse maintain` pass (`week`, `month` = packed registers, `daily` = each day's
estimate, `rolled_at`), so the Users page reads two documents, not thirty."""
TOTALS = "totals"
LEADERS = "leaders"
MINUTE_LEADERS = "minute_leaders"
"""Per minute, candidates for its busiest items: `_id` = the minute id, `top.<item id>` = the
item's count in the minute (pulse/store/trending.py), for trending items over the last 5, 15
and 60 minutes."""

# --- bookkeeping (exactly-once, retries, inspection) ---------------------------------------
LEDGER = "ledger"
"""`_id` = the batch id (pulse.ingest.batch.batch_id): '<topic>/p0:100-199,p3:40-80'."""
UNFINISHED = ("writing", "failed")
"""Ledger statuses of entries still to be applied. `applied` is done; `split` (written in
parts), `stale` (others counted its records), `refused` (an entity flush left out) and `lost`
(its records gone from Kafka) were set aside for the reason the entry gives."""
OPEN_BATCHES = "open_batches"
"""One marker per batch not applied yet, `_id` = batch id: FerretDB filters the ledger by
scanning it, so finding unfinished batches there would cost more with every batch."""
OFFSETS = "offsets"
"""Per partition: `next_offset` (the next record to count), `entities_next` (the next record
no entity flush holds) and `entity_batches` (batch ids applied since, waiting for a flush)."""
ENTITIES_NEXT = "entities_next"
ENTITY_BATCHES = "entity_batches"
COUNTERS = "counters"
USER_BUCKETS_COUNTER = "user_buckets"
"""`counters` _id holding the number of user buckets the database was first written with."""
ITEM_BUCKETS_COUNTER = "item_buckets"
"""`counters` _id holding the number of item x minute buckets per minute the database was
first written with: readers find an item's bucket from it."""
LOST_RECORDS = "lost_records"
"""`counters` _id: records of ledger entries an operator resolved as lost (Kafka no longer
held them)."""
REFUSED_FLUSHES = "refused_flushes"
"""`counters` _id: entity flushes left out because writing them failed for their records."""
DEAD_LETTERS = "dead_letters"
DEAD_FIELDS = "dead_fields"
"""The global document's dead letters by field (`dead_fields.<field>`, `record` for whole-record
rejects), counted with each batch: the health page reads them instead of grouping dead letters."""
WHOLE_RECORD = "record"
"""`dead_fields` key of dead letters rejected whole (no field named)."""

# --- time-bounded access (FerretDB indexes only `_id`) --------------------------------------
TIMELINE = "timeline"
"""Which documents of a growing collection were written in each minute: `_id` =
'<collection>|<minute id>', `ids` = their `_id`s. Recent ledger entries, dead letters and
alerts are read, and old ones pruned, through it by `_id`: on FerretDB a sort or a range on
another field reads the whole collection."""
MAINTENANCE = "maintenance"
"""What `pulse maintain` has done, per target (`_id` the target, `through` the minute id up to
which it is pruned), so a pass reads only the minutes since the last one."""

# --- alerts ---------------------------------------------------------------------------------
ALERTS = "alerts"
ALERT_STATE = "alert_state"
ALERT_RULES = "alert_rules"
RULE_REJECTIONS = "alert_rule_rejections"
"""One document per stored rule that does not validate (`_id` its id, `reason`), kept in
step with `alert_rules` by the consumer at each refresh of the rules."""

TIMELINED = (LEDGER, DEAD_LETTERS, ALERTS)
"""The collections listed in the timeline, by the minute their documents were first written."""

COUNT_MARKS = "wm"
"""Watermarks of the documents written with every micro-batch: `wm.<topic>.p<partition>`."""
ENTITY_MARKS = "ws"
"""Watermarks of the documents written by entity flushes (users, items, item x minute, the
global document's user and item figures): `ws.<topic>.p<partition>` (docs/consumer.md)."""
MARKS_BY_TOPIC = "topic"
"""A ledger entry's `marks` when its watermarks name the topic. Entries without it were
written when watermarks were `wm.p<partition>` for every topic, and are replayed so."""


def marks_field(marks: str, topic: str | None, partition: int) -> str:
    """The watermark of one topic's partition: 'wm.<topic>.p<n>'; 'wm.p<n>' for topic None
    (the layout before watermarks named their topic). A '.' of a topic name becomes '~',
    which no Kafka topic name holds, so every topic has watermarks of its own."""
    scope = marks if topic is None else f"{marks}.{topic.replace('.', '~')}"
    return f"{scope}.p{partition}"


TOTALS_ID = "global"
"""The one document of `totals`."""

INDEXES: dict[str, list[list[tuple[str, int]]]] = {
    MINUTES: [[("minute", DESCENDING)]],
    LEDGER: [[("status", ASCENDING)], [("started_at", DESCENDING)]],
    DEAD_LETTERS: [[("received_at", DESCENDING)], [("reason", ASCENDING)]],
}


MINUTE, HOUR, DAY = "minute", "hour", "day"
"""The periods figures are kept at: minutes, and their sums per hour and per day."""
_PERIOD_FORMATS = {MINUTE: MINUTE_FORMAT, HOUR: "%Y-%m-%dT%HZ", DAY: "%Y-%m-%d"}
PERIOD_LENGTHS = {
    MINUTE: timedelta(minutes=1),
    HOUR: timedelta(hours=1),
    DAY: timedelta(days=1),
}
TIMELINE_PERIODS = {LEDGER: MINUTE, DEAD_LETTERS: MINUTE, ALERTS: DAY}
"""How finely each timelined collection is listed: alerts are few, and read over weeks."""


def period_start(period: str, moment: datetime) -> datetime:
    """The start of the period holding `moment` (UTC)."""
    moment = moment.astimezone(UTC)
    if period == DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == HOUR:
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(second=0, microsecond=0)


def period_key(period: str, moment: datetime) -> str:
    """The period holding `moment`, as text that sorts by time: '2026-12-02T01Z' (an hour)."""
    return moment.astimezone(UTC).strftime(_PERIOD_FORMATS[period])


def parse_period_key(period: str, key: str) -> datetime:
    """The start of the period a key names (period_key's inverse)."""
    return datetime.strptime(key, _PERIOD_FORMATS[period]).replace(tzinfo=UTC)


def period_starts(period: str, since: datetime, until: datetime) -> list[datetime]:
    """The starts of the periods from the one holding `since` to the one holding `until`."""
    start, step = period_start(period, since), PERIOD_LENGTHS[period]
    count = int((until - start) / step) + 1
    return [start + n * step for n in range(max(count, 0))]


def period_id(period: str, moment: datetime) -> str:
    """`periods` _id of the hour or day holding `moment`: 'hour|2026-12-02T01Z'."""
    return f"{period}|{period_key(period, moment)}"


def minute_id(moment: datetime) -> str:
    """`minutes` _id of the minute holding `moment`, e.g. '2026-11-27T18:05Z'."""
    return moment.astimezone(UTC).strftime(MINUTE_FORMAT)


def parse_minute_id(doc_id: str) -> datetime:
    return datetime.strptime(doc_id, MINUTE_FORMAT).replace(tzinfo=UTC)


def item_minute_id(item_id: str, minute: str, buckets: int) -> str:
    """`minute_items` _id of the document holding an item's figures of a minute:
    '<minute id>|b<n>', n = item_bucket(item_id, buckets)."""
    return f"{minute}|b{item_bucket(item_id, buckets)}"


def item_bucket(item_id: str, buckets: int) -> int:
    """Which of a minute's (or an hour's) `buckets` item buckets holds an item: a stable hash
    (CRC-32) of the item id modulo `buckets`."""
    return _bucket_of(item_id, buckets)


def item_minute_ids_of(minute: str, buckets: int) -> list[str]:
    """Every `minute_items` _id of a minute (what retention removes)."""
    return [f"{minute}|b{n}" for n in range(buckets)]


ITEM_HOURS_SHARE = 4
"""An hour has this many times fewer item buckets than a minute: an item x hour bucket holds
only totals, and each bucket is a statement of every flush."""


def item_hour_id(item_id: str, hour: datetime, buckets: int) -> str:
    """`hour_items` _id of the document holding an item's total of the hour holding `hour`:
    '<hour key>|b<n>', e.g. '2026-12-02T01Z|b17', n = item_bucket(item_id, one ITEM_HOURS_SHARE
    of the database's `buckets`)."""
    return f"{period_key(HOUR, hour)}|b{item_bucket(item_id, _hour_buckets(buckets))}"


def item_hour_ids_of(hour: datetime, buckets: int) -> list[str]:
    """Every `hour_items` _id of the hour holding `hour` (what retention removes), for a
    database of `buckets` item buckets."""
    return [f"{period_key(HOUR, hour)}|b{n}" for n in range(_hour_buckets(buckets))]


def _hour_buckets(buckets: int) -> int:
    return max(1, buckets // ITEM_HOURS_SHARE)


BUCKET_ITEMS = "i"
"""The field of an item x minute bucket holding its items' figures, by item id."""


def item_path(item_id: str) -> str:
    """Where an item's figures sit inside its item x minute bucket: 'i.<item id>'."""
    return f"{BUCKET_ITEMS}.{item_id}"


def _bucket_of(key: str, buckets: int) -> int:
    return zlib.crc32(key.encode()) % buckets


def item_entity_bucket(item_id: str, buckets: int) -> str:
    """`item_buckets` _id of the bucket an item's figures live in: 'b<n>', n =
    item_bucket(item_id, buckets), so an item shares its bucket number with its item x
    minute bucket."""
    return f"b{item_bucket(item_id, buckets)}"


def user_minute_id(minute: str, partition: int) -> str:
    """`user_minutes` _id: one document per minute and Kafka partition, '<minute id>|p<n>'."""
    return f"{minute}|p{partition}"


def user_minute_ids_of(minute: str) -> dict[str, str]:
    """An _id range filter matching a minute's `user_minutes` documents of every partition."""
    # Every '<minute>|p<n>' sorts between '<minute>|p' and '<minute>|q'.
    prefix = user_minute_id(minute, 0).removesuffix("0")
    return {"$gte": prefix, "$lt": prefix.removesuffix("p") + "q"}


def minute_of_id(doc_id: str) -> str:
    """The minute id heading a `user_minutes` or `minute_items` _id."""
    return doc_id.split("|", 1)[0]


def user_bucket(user_id: str, buckets: int) -> str:
    """`user_buckets` _id of the bucket a user's figures live in: 'b<n>', n a stable hash
    (CRC-32) of the user id modulo `buckets`. A string: FerretDB finds integer _ids by
    scanning the collection."""
    return f"b{_bucket_of(user_id, buckets)}"


BUCKET_USERS = "u"
"""The field of a user bucket holding its users' figures, by user id."""


def ids_by_bucket(ids: Iterable[str], bucket_of: Callable[[str], str]) -> dict[str, list[str]]:
    """User or item ids by the bucket document each lives in (`user_bucket`,
    `item_entity_bucket`), each bucket's in the order given."""
    grouped: dict[str, list[str]] = {}
    for entity_id in ids:
        grouped.setdefault(bucket_of(entity_id), []).append(entity_id)
    return grouped


def user_path(user_id: str) -> str:
    """Where a user's figures sit inside its bucket document: 'u.<user id>'."""
    return f"{BUCKET_USERS}.{user_id}"


def timeline_id(collection: str, moment: datetime) -> str:
    """`timeline` _id of a collection's documents first written in the period (minute, or
    day for alerts: TIMELINE_PERIODS) holding `moment`: '<collection>|<period key>'."""
    return f"{collection}|{period_key(TIMELINE_PERIODS[collection], moment)}"


def record_id(topic: str, partition: int, offset: int) -> str:
    """A Kafka record's identity, the _id of its dead letter: '<topic>:<partition>:<offset>'."""
    return f"{topic}:{partition}:{offset}"


def offsets_id(topic: str, partition: int) -> str:
    """`offsets` _id: '<topic>:<partition>'."""
    return f"{topic}:{partition}"


def alert_state_id(rule_id: str, key: str) -> str:
    """`alert_state` _id: '<rule>|<key>'."""
    return f"{rule_id}|{key}"


def judged_id(rule_id: str) -> str:
    """`alert_state` _id of where a closed-window rule (item_conversion) has judged up to:
    '<rule>|' (no key)."""
    return alert_state_id(rule_id, "")
