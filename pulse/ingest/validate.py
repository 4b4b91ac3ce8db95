"""Split raw records into valid events and dead letters, each with a reason that names the field.

Pure and deterministic: the verdict depends only on the record (value and Kafka timestamp) and
the rules, never on the clock, so a replayed batch is judged exactly as the first time.
Records in the usual shape are parsed in one Polars pass (pulse/ingest/bulk.py); the others are
read one by one (orjson; pulse/ingest/wire.py accepts the other shapes real producers send and
names what is wrong). Both give the same verdict for a record. The value checks (id syntax, type
names, timestamp bounds, duplicates) run vectorised in Polars. Fields the event does not have
are ignored and counted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from pulse.events import EARLIEST_MS, FIELDS, ID_PATTERN, LATEST_MS, SCHEMA, SCHEMA_VERSION
from pulse.ingest.bulk import nothing_read, read_usual
from pulse.ingest.wire import KNOWN, PREVIEW, Rejected, quote, read_event

log = logging.getLogger(__name__)

NESTING_TRIED = 512
"""Brackets beyond which a refused record is not handed to `json.loads`, which recurses (1,100
`[` raise RecursionError in it): orjson's own message is the reason then."""
UNREADABLE = "could not be read"
"""The reason of a record whose reading raised: a bug to report, kept as a dead letter."""
_KAFKA_TS_BOUND = 2**62  # Kafka timestamps clipped to this before adding bounds: no overflow


@dataclass(frozen=True)
class ValidationRules:
    """What counts as a valid event."""

    interaction_types: tuple[str, ...]
    max_record_bytes: int = 65_536
    max_age_ms: int = 7 * 24 * 3600 * 1000
    """How far an event's time may lie before its Kafka timestamp."""
    max_lead_ms: int = 3600 * 1000
    """How far an event's time may lie after its Kafka timestamp."""


@dataclass(frozen=True)
class Verdict:
    """A batch split in two."""

    events: pl.DataFrame
    """Valid events: the event schema plus partition and offset."""
    dead: pl.DataFrame
    """Rejected records: partition, offset, kafka_ts, key, value, reason, field."""
    ignored_fields: dict[str, int] = field(default_factory=dict)
    """Fields outside the event schema, by name: how many valid records carried each."""
    isolated: int = 0
    """Dead letters among `dead` because processing them raised (pulse/ingest/isolate.py)."""


DEAD_SCHEMA = pl.Schema(
    {
        "partition": pl.Int32(),
        "offset": pl.Int64(),
        "kafka_ts": pl.Int64(),
        "key": pl.Binary(),
        "value": pl.Binary(),
        "reason": pl.String(),
        "field": pl.String(),
    }
)
EVENT_COLUMNS = (*FIELDS, "partition", "offset")


def validate(records: pl.DataFrame, rules: ValidationRules, *, bulk: bool = True) -> Verdict:
    """Valid events and dead letters of a frame of raw records (RECORD_SCHEMA).

    Records in the usual shape are read in one Polars pass (pulse/ingest/bulk.py), the rest one
    by one; `bulk=False` reads every record on its own, the reference the tests hold the bulk
    path to.
    """
    values = records.get_column("value")
    fast, fast_rows = _read_usual(values, rules.max_record_bytes) if bulk else nothing_read()
    read = pl.Series([False] * values.len(), dtype=pl.Boolean).scatter(fast_rows, True)
    slow_rows = read.not_().arg_true()
    rows: list[int] = []
    good: list[dict[str, Any]] = []
    problems: list[tuple[int, str, str]] = []
    extras: dict[int, list[str]] = {}
    for row, value in zip(slow_rows.to_list(), values.gather(slow_rows).to_list(), strict=True):
        outcome = _parse(value, rules.max_record_bytes)
        if isinstance(outcome, Rejected):
            problems.append((row, outcome.reason, outcome.field))
            continue
        record, event = outcome
        rows.append(row)
        good.append(event)
        if not KNOWN.issuperset(record):
            extras[row] = [name for name in record if name not in KNOWN]

    slow = pl.DataFrame({name: [event[name] for event in good] for name in FIELDS}, schema=SCHEMA)
    candidates = pl.concat(
        [
            fast.with_columns(fast_rows.alias("row")),
            slow.with_columns(pl.Series("row", rows, pl.UInt32)),
        ]
    ).sort("row")
    candidates = candidates.with_columns(
        records.select("partition", "offset", "kafka_ts")[candidates.get_column("row")]
    )
    checked = candidates.with_columns(_value_problems(rules))
    bad = checked.filter(pl.col("reason").is_not_null())
    events = checked.filter(pl.col("reason").is_null()).select(EVENT_COLUMNS)

    dead_rows = problems + list(bad.select("row", "reason", "field").iter_rows())
    rejected = {row for row, _, _ in dead_rows}
    ignored = Counter(
        name for row, names in extras.items() if row not in rejected for name in names
    )
    return Verdict(events, _dead_letters(records, dead_rows), dict(sorted(ignored.items())))


def _read_usual(values: pl.Series, max_bytes: int) -> tuple[pl.DataFrame, pl.Series]:
    """The bulk pass, or nothing when Polars cannot read what the pattern let through: the
    per-record reader then judges every record and names what is wrong."""
    try:
        return read_usual(values, max_bytes)
    except Exception:  # input must never stop a batch; the slow path gives the verdicts
        log.exception("the bulk reader failed on a batch; reading its records one by one")
        return nothing_read()


def _parse(value: bytes | None, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]] | Rejected:
    """The record as sent and its event fields, or why it is no event; never raises."""
    try:
        return _parse_record(value, max_bytes)
    except Exception as exc:  # a verdict per record: no byte string may stop the batch
        return Rejected(f"{UNREADABLE} ({type(exc).__name__})")


def _parse_record(
    value: bytes | None, max_bytes: int
) -> tuple[dict[str, Any], dict[str, Any]] | Rejected:
    if value is None or len(value) == 0:
        return Rejected("record is empty")
    if len(value) > max_bytes:
        return Rejected(f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return _why_not_json(value, exc)
    if not isinstance(event, dict):
        return Rejected(f"not a JSON object but a JSON {type(event).__name__}")
    fields = read_event(event)
    return fields if isinstance(fields, Rejected) else (event, fields)


def _why_not_json(value: bytes, refusal: orjson.JSONDecodeError) -> Rejected:
    """A precise reason for a record orjson refused (slow path: bad records only)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("not UTF-8 text")
    if value.count(b"[") + value.count(b"{") > NESTING_TRIED:
        return Rejected(f"not valid JSON ({refusal.msg} at character {refusal.pos})")
    try:
        event = json.loads(text)  # accepts NaN/Infinity and huge integers, to name the field
    except json.JSONDecodeError as exc:
        return Rejected(f"not valid JSON ({exc.msg} at character {exc.pos})")
    except RecursionError:
        return Rejected("not valid JSON (nested too deeply)")
    except ValueError:  # e.g. an integer with more digits than Python will convert
        return Rejected("not valid JSON (a number is out of range)")
    return _bad_number(event) if isinstance(event, dict) else Rejected("not valid JSON")


def _bad_number(event: dict[str, Any]) -> Rejected:
    """The field orjson refused for its number: not finite, or beyond 64 bits."""
    for name, item in event.items():
        field, said = (name, name) if name in KNOWN else ("", f"field {quote(name)}")
        if isinstance(item, float) and not math.isfinite(item):
            return Rejected(f"{said} is not a finite number", field)
        if isinstance(item, int) and not -(2**63) <= item < 2**63:
            return Rejected(f"{said} is out of the 64-bit range", field)
    return Rejected("not valid JSON")


def _value_problems(rules: ValidationRules) -> list[pl.Expr]:
    """Reason and field of the first broken value rule per event (null when valid)."""
    id_rule = ID_PATTERN.strip("^$")
    known = ", ".join(rules.interaction_types)
    age_s, lead_s = rules.max_age_ms // 1000, rules.max_lead_ms // 1000
    stamp = pl.col("timestamp").cast(pl.String)
    kafka_ts = pl.col("kafka_ts").clip(-_KAFKA_TS_BOUND, _KAFKA_TS_BOUND)
    checks: list[tuple[pl.Expr, pl.Expr, str]] = [
        (
            ~pl.col(name).str.contains(ID_PATTERN).fill_null(value=True),  # event_id: optional
            _says(f"{name} ", _preview(pl.col(name)), f" is not an id ({id_rule})"),
            name,
        )
        for name in ("event_id", "user_id", "item_id")
    ]
    checks += [
        (
            ~pl.col("interaction_type").is_in(list(rules.interaction_types)),
            _says(
                "interaction_type ",
                _preview(pl.col("interaction_type")),
                f" is not one of: {known}",
            ),
            "interaction_type",
        ),
        (
            (pl.col("schema_version") != SCHEMA_VERSION).fill_null(value=False),
            _says(
                "schema_version ",
                pl.col("schema_version").cast(pl.String),
                f" is not {SCHEMA_VERSION}",
            ),
            "schema_version",
        ),
        (
            ~pl.col("timestamp").is_between(EARLIEST_MS, LATEST_MS),
            _says("timestamp ", stamp, " is not between the years 1970 and 9998"),
            "timestamp",
        ),
        (
            pl.col("timestamp") < kafka_ts - rules.max_age_ms,
            _says("timestamp ", stamp, f" is more than {age_s} s before its Kafka timestamp"),
            "timestamp",
        ),
        (
            pl.col("timestamp") > kafka_ts + rules.max_lead_ms,
            _says("timestamp ", stamp, f" is more than {lead_s} s after its Kafka timestamp"),
            "timestamp",
        ),
        (
            pl.col("event_id").is_not_null() & ~pl.col("event_id").is_first_distinct(),
            _says("duplicate event_id ", pl.col("event_id"), " within the batch"),
            "event_id",
        ),
    ]
    reason = pl.lit(None, pl.String)
    field = pl.lit(None, pl.String)
    for condition, message, name in reversed(checks):  # the first broken rule wins
        reason = pl.when(condition).then(message).otherwise(reason)
        field = pl.when(condition).then(pl.lit(name)).otherwise(field)
    return [reason.alias("reason"), field.alias("field")]


def _says(before: str, value: pl.Expr, after: str) -> pl.Expr:
    """A reason: literal text around a value (pl.format would read the braces of id rules)."""
    return pl.concat_str([pl.lit(before), value, pl.lit(after)])


def _preview(column: pl.Expr) -> pl.Expr:
    """A bad value quoted for a reason, shortened, control characters made visible."""
    shortened = (
        pl.when(column.str.len_chars() > PREVIEW)
        .then(column.str.slice(0, PREVIEW) + "…")
        .otherwise(column)
    )
    return _says("'", shortened.str.replace_all(r"[\x00-\x1f\x7f]", "?"), "'")


def _dead_letters(records: pl.DataFrame, rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    if not rows:
        return DEAD_SCHEMA.to_frame()
    rows.sort()
    index = [row for row, _, _ in rows]
    return (
        records[index]
        .with_columns(
            pl.Series("reason", [reason for _, reason, _ in rows], pl.String),
            pl.Series("field", [field for _, _, field in rows], pl.String),
        )
        .select(DEAD_SCHEMA.names())
    )


KEY_KEPT_BYTES = 1_024
"""A dead letter keeps at most this much of a record's Kafka key."""


@dataclass(frozen=True)
class Kept:
    """What a dead letter keeps of a rejected record: bounded, with the whole one's size and
    SHA-256, so a record too big to keep can still be recognised."""

    value: bytes
    size: int
    sha256: str
    truncated: bool


def kept(value: bytes | None, field: str | None, keep_bytes: int) -> Kept:
    """A record rejected as a whole (too big, not UTF-8, not JSON, not an object) keeps its
    first `keep_bytes`; one rejected for a field is valid JSON within the size limit and is
    kept whole, so that it can be fixed and replayed."""
    whole = value or b""
    truncated = not field and len(whole) > keep_bytes
    return Kept(
        value=whole[:keep_bytes] if truncated else whole,
        size=len(whole),
        sha256=hashlib.sha256(whole).hexdigest(),
        truncated=truncated,
    )
