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

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import orjson
import polars as pl

from pulse.events import FIELDS, ID_PATTERN, SCHEMA, SCHEMA_VERSION
from pulse.ingest.bulk import nothing_read, read_usual
from pulse.ingest.wire import KNOWN, PREVIEW, Rejected, read_event


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
    fast, fast_rows = read_usual(values, rules.max_record_bytes) if bulk else nothing_read()
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


def _parse(value: bytes | None, max_bytes: int) -> tuple[dict[str, Any], dict[str, Any]] | Rejected:
    """The record as sent and its event fields, or why it is no event."""
    if value is None or len(value) == 0:
        return Rejected("record is empty")
    if len(value) > max_bytes:
        return Rejected(f"record is {len(value)} bytes, over the {max_bytes}-byte limit")
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return _why_not_json(value)
    if not isinstance(event, dict):
        return Rejected(f"not a JSON object but a JSON {type(event).__name__}")
    fields = read_event(event)
    return fields if isinstance(fields, Rejected) else (event, fields)


def _why_not_json(value: bytes) -> Rejected:
    """A precise reason for a record orjson refused (slow path: bad records only)."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return Rejected("not UTF-8 text")
    try:
        event = json.loads(text)  # accepts NaN/Infinity and huge integers, to name the field
    except json.JSONDecodeError as exc:
        return Rejected(f"not valid JSON ({exc.msg} at character {exc.pos})")
    except ValueError:  # e.g. an integer with more digits than Python will convert
        return Rejected("not valid JSON (a number is out of range)")
    if isinstance(event, dict):
        for name, item in event.items():
            if isinstance(item, float) and not math.isfinite(item):
                return Rejected(f"{name} is not a finite number", str(name))
            if isinstance(item, int) and not -(2**63) <= item < 2**63:
                return Rejected(f"{name} is out of the 64-bit range", str(name))
    return Rejected("not valid JSON")


def _value_problems(rules: ValidationRules) -> list[pl.Expr]:
    """Reason and field of the first broken value rule per event (null when valid)."""
    id_rule = ID_PATTERN.strip("^$")
    known = ", ".join(rules.interaction_types)
    age_s, lead_s = rules.max_age_ms // 1000, rules.max_lead_ms // 1000
    stamp = pl.col("timestamp").cast(pl.String)
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
            pl.col("timestamp") < pl.col("kafka_ts") - rules.max_age_ms,
            _says("timestamp ", stamp, f" is more than {age_s} s before its Kafka timestamp"),
            "timestamp",
        ),
        (
            pl.col("timestamp") > pl.col("kafka_ts") + rules.max_lead_ms,
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
