"""The interaction event: the single source of truth for its fields and wire format.

Wire format: one JSON object per Kafka message, UTF-8. The key is free (Pulse's generator uses
``user_id``, so one user's events stay in order on one partition). Required fields::

    {"user_id":"u17","item_id":"i3","interaction_type":"click","timestamp":1795795200123}

- ``user_id``, ``item_id``: opaque ids, ``[A-Za-z0-9_:-]{1,64}``; an integer is accepted and
  read as its decimal string (``17`` and ``"17"`` are the same user).
- ``interaction_type``: one of the configured types (default view, click, add_to_cart, purchase).
- ``timestamp``: event time as epoch milliseconds or epoch seconds (a JSON number or a string of
  digits; magnitude below 1e11 means seconds, see pulse/ingest/wire.py), or an ISO-8601 / RFC 3339
  time with a UTC offset (``2026-11-28T10:00:00.123Z``, ``...+02:00``). A time without a zone
  is rejected, naming the field. Stored as integer milliseconds, UTC.

Optional: ``event_id`` (same id rules; a repeat within one micro-batch is dead-lettered) and
``schema_version`` (1). Exactly-once counting rests on Kafka offsets, not on ``event_id``.
Any other field is ignored, never a reason to reject the event; each batch's ledger entry
counts the records that carried each one (``ignored_fields``).

Ids and type names are restricted to safe character sets, so they can be MongoDB keys and log
lines as they are, and need no JSON escaping. Pulse's own generator sends the full form below
(``encode``), with ``event_id`` and ``schema_version``.
"""

from __future__ import annotations

import re
from typing import Final

import polars as pl

SCHEMA_VERSION: Final = 1
ID_PATTERN: Final = r"^[A-Za-z0-9_:-]{1,64}$"
ID_MAX_LENGTH: Final = 64
_ID = re.compile(ID_PATTERN)


def is_id(text: str) -> bool:
    """Whether `text` can be a user, item or event id (ID_PATTERN)."""
    return _ID.fullmatch(text) is not None


EARLIEST_MS: Final = 0
"""The earliest event time accepted: 1970-01-01T00:00Z."""
LATEST_MS: Final = 253_370_764_799_999
"""The latest event time accepted: the last millisecond of 9998 (UTC). A later time, even one
its Kafka timestamp agrees with, is refused: a day's window after it would leave the range of
Python's datetime."""

# Column order is the wire order.
SCHEMA: Final = pl.Schema(
    {
        "event_id": pl.String(),
        "user_id": pl.String(),
        "item_id": pl.String(),
        "interaction_type": pl.String(),
        "timestamp": pl.Int64(),
        "schema_version": pl.Int64(),
    }
)
FIELDS: Final = tuple(SCHEMA.names())


def encode(events: pl.DataFrame) -> pl.Series:
    """Compact JSON per event, in wire field order, as binary (vectorised).

    The frame must hold valid events: ids match ID_PATTERN and types settings.TYPE_PATTERN, which
    need no JSON escaping, so plain concatenation is exact JSON (and twice as fast as a
    general JSON encoder, which matters on the producer's hot path).
    """
    parts: list[pl.Expr] = []
    for name, dtype in SCHEMA.items():
        separator = "{" if not parts else ","
        if dtype == pl.String():
            parts += [pl.lit(f'{separator}"{name}":"'), pl.col(name), pl.lit('"')]
        else:
            parts += [pl.lit(f'{separator}"{name}":'), pl.col(name).cast(pl.String)]
    parts.append(pl.lit("}"))
    return events.select(pl.concat_str(parts).cast(pl.Binary).alias("value")).to_series()
