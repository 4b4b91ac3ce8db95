"""Read a batch's records in one Polars pass when they have the usual shape (pure).

The usual shape is what our generator and most producers send: a flat JSON object with string
ids and type, an integer timestamp in milliseconds and, optionally, event_id and an integer
schema_version. Polars' NDJSON reader parses such records about four times faster than one
`orjson.loads` and one Python call per record (docs/performance.md).

Polars reads JSON more loosely than pulse/ingest/wire.py: it turns `true` or `17.5` into the
string "true" or "17.5" in a string column, keeps the first of two equal keys where orjson keeps
the last, and reads some escapes differently. So a record takes this path only when a strict
pattern proves it is in the usual shape, where both readers agree field for field; every other
record goes to the per-record reader, which names what is wrong. tests/unit/ingest/test_validate.py
checks that both paths give the same verdict on every kind of record.
"""

from __future__ import annotations

import io
from typing import Final

import polars as pl

from pulse.events import SCHEMA
from pulse.ingest.wire import REQUIRED, SECONDS_BELOW

_SPACE: Final = "[ \\t]*"  # no newlines: records are joined one per line
_TEXT: Final = '"[^"\\\\\\x00-\\x1f]*"'  # a string without escapes or control characters
_INTEGER: Final = "-?(?:0|[1-9][0-9]{0,17})"  # up to 18 digits: always within 64 bits
_TEXT_FIELDS: Final = "event_id|user_id|item_id|interaction_type"
_INTEGER_FIELDS: Final = "timestamp|schema_version"
_PAIR: Final = (
    f'(?:"(?:{_TEXT_FIELDS})"{_SPACE}:{_SPACE}{_TEXT}'
    f'|"(?:{_INTEGER_FIELDS})"{_SPACE}:{_SPACE}{_INTEGER})'
)
USUAL_SHAPE: Final = (
    f"^{_SPACE}\\{{{_SPACE}{_PAIR}(?:{_SPACE},{_SPACE}{_PAIR})*{_SPACE}\\}}{_SPACE}$"
)
"""A flat object of known fields, each of its usual JSON type (no nulls, floats or escapes)."""
_KEY: Final = f'"[a-z_]+"{_SPACE}:'  # after USUAL_SHAPE matched, only keys are followed by ':'


def read_usual(values: pl.Series, max_bytes: int) -> tuple[pl.DataFrame, pl.Series]:
    """The event fields (SCHEMA) of the records in the usual shape, and the row numbers they
    came from; every other row is left to the per-record reader."""
    candidates = pl.DataFrame({"text": _text(values)}).with_row_index("row")
    candidates = candidates.filter(
        pl.col("text").str.len_bytes().is_between(1, max_bytes)
        & pl.col("text").str.contains(USUAL_SHAPE)
    )
    if candidates.height == 0:
        return nothing_read()
    joined = candidates.get_column("text").str.join("\n").item()
    fields = pl.read_ndjson(io.BytesIO(joined.encode()), schema=SCHEMA)
    # A repeated key would be read differently (Polars keeps the first, orjson the last); a
    # missing field or a timestamp in seconds needs the per-record reader's rules.
    keys = candidates.get_column("text").str.count_matches(_KEY)
    usual = (
        (keys == fields.select(pl.sum_horizontal(pl.all().is_not_null())).to_series())
        & fields.select(pl.all_horizontal(pl.col(*REQUIRED).is_not_null())).to_series()
        & (fields.get_column("timestamp") >= SECONDS_BELOW).fill_null(value=False)
    )
    return fields.filter(usual), candidates.get_column("row").filter(usual)


def nothing_read() -> tuple[pl.DataFrame, pl.Series]:
    """What read_usual returns when no record is in the usual shape."""
    return SCHEMA.to_frame(), pl.Series("row", [], pl.UInt32)


def _text(values: pl.Series) -> pl.Series:
    """The records as text; null where a record is not UTF-8."""
    try:
        return values.cast(pl.String)
    except pl.exceptions.ComputeError:  # rare: find the records that are not UTF-8 one by one
        return pl.Series([_utf8(value) for value in values.to_list()], dtype=pl.String)


def _utf8(value: bytes | None) -> str | None:
    try:
        return None if value is None else value.decode()
    except UnicodeDecodeError:
        return None
