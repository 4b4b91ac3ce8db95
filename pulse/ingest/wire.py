"""Read one record's fields in any shape producers send, normalised to the event schema (pure).

Accepted (see pulse/events.py for the wire format):
- ``user_id``, ``item_id`` (required) and ``event_id`` (optional): a string, or an integer,
  which becomes its decimal string (``17`` -> ``"17"``).
- ``interaction_type`` (required): a string.
- ``timestamp`` (required): epoch milliseconds or epoch seconds, as a JSON number or a string
  of digits, or an ISO-8601 / RFC 3339 time with a UTC offset (``Z`` or ``+hh:mm``). A number
  whose magnitude is below ``SECONDS_BELOW`` (1e11) is in seconds, otherwise in milliseconds:
  1e11 seconds lies in the year 5138 and 1e11 milliseconds in March 1973, so every time from
  1973 to 5138 reads the same either way. Fractions are rounded to the millisecond.
- ``schema_version`` (optional): 1.
- Any other field is ignored; the caller counts them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

SECONDS_BELOW: Final = 100_000_000_000
"""Epoch numbers below this magnitude are seconds; from it on, milliseconds."""
REQUIRED: Final = ("user_id", "item_id", "interaction_type", "timestamp")
OPTIONAL: Final = ("event_id", "schema_version")
KNOWN: Final = frozenset((*REQUIRED, *OPTIONAL))
PREVIEW: Final = 40  # characters of a bad value quoted in a reason

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)
_INT64 = 2**63
_DIGITS = re.compile(r"-?[0-9]+(\.[0-9]+)?")  # ASCII only: int() also reads other scripts' digits
_MAX_INTEGER_DIGITS = 19  # 2**63 has 19 digits; int() of a longer text is refused unconverted


@dataclass(frozen=True)
class Rejected:
    """Why a record is not an event: a reason and the field it names ('' for the record)."""

    reason: str
    field: str = ""


def read_event(record: dict[str, Any]) -> dict[str, Any] | Rejected:
    """The event's fields normalised (ids as strings, time in epoch ms), or why not."""
    get = record.get
    user, item, kind, stamp = (
        get("user_id"),
        get("item_id"),
        get("interaction_type"),
        get("timestamp"),
    )
    event_id, version = get("event_id"), get("schema_version")
    if (  # the usual shape, already normalised: no per-field work
        type(user) is str
        and type(item) is str
        and type(kind) is str
        and type(stamp) is int
        and SECONDS_BELOW <= stamp < _INT64
        and (event_id is None or type(event_id) is str)
        and (version is None or type(version) is int)
    ):
        return {
            "event_id": event_id,
            "user_id": user,
            "item_id": item,
            "interaction_type": kind,
            "timestamp": stamp,
            "schema_version": version,
        }
    return _read_any_shape(record)


def _read_any_shape(record: dict[str, Any]) -> dict[str, Any] | Rejected:
    for name in REQUIRED:
        if name not in record:
            return Rejected(f"{name} is missing", name)
    event: dict[str, Any] = {}
    for name in ("event_id", "user_id", "item_id"):
        value = record.get(name)
        if value is None and name == "event_id":
            event[name] = None
            continue
        if type(value) is int:  # bool is an int subclass: excluded on purpose
            value = str(value)
        if not isinstance(value, str):
            return Rejected(f"{name} must be a string or an integer, got {type_name(value)}", name)
        event[name] = value
    kind = record["interaction_type"]
    if not isinstance(kind, str):
        return Rejected(
            f"interaction_type must be a string, got {type_name(kind)}", "interaction_type"
        )
    event["interaction_type"] = kind
    stamp = epoch_ms(record["timestamp"])
    if isinstance(stamp, str):
        return Rejected(stamp, "timestamp")
    event["timestamp"] = stamp
    version = record.get("schema_version")
    if version is not None and type(version) is not int:
        return Rejected(
            f"schema_version must be an integer, got {type_name(version)}", "schema_version"
        )
    event["schema_version"] = version
    return event


def epoch_ms(value: object) -> int | str:
    """Milliseconds since the epoch, or the reason the value is not a time."""
    if type(value) is int and abs(value) >= SECONDS_BELOW:  # the generator's shape: fast path
        return value if -_INT64 <= value < _INT64 else "timestamp is out of the 64-bit range"
    if isinstance(value, str):
        return _parse_text(value)
    if type(value) in (int, float):
        return _from_number(value)  # type: ignore[arg-type]
    return (
        "timestamp must be epoch milliseconds, epoch seconds or an ISO-8601 time, "
        f"got {type_name(value)}"
    )


def _from_number(value: float) -> int | str:
    if not math.isfinite(value):
        return "timestamp is not a finite number"
    millis = round(value * 1000) if abs(value) < SECONDS_BELOW else round(value)
    if not -_INT64 <= millis < _INT64:
        return "timestamp is out of the 64-bit range"
    return millis


def _parse_text(text: str) -> int | str:
    stripped = text.strip()
    if _DIGITS.fullmatch(stripped):
        if len(stripped.split(".", 1)[0].lstrip("-0")) > _MAX_INTEGER_DIGITS:
            return "timestamp is out of the 64-bit range"  # before int(): it refuses 4,300+
        number = float(stripped) if "." in stripped else int(stripped)
        return _from_number(number)
    try:
        moment = datetime.fromisoformat(stripped)
    except ValueError:
        return (
            f"timestamp {quote(text)} is not epoch milliseconds, epoch seconds or an ISO-8601 time"
        )
    if moment.tzinfo is None:
        return f"timestamp {quote(text)} has no UTC offset (add Z or +hh:mm)"
    return (moment - _EPOCH) // _MILLISECOND


def quote(text: str) -> str:
    """A value quoted for a reason: shortened, control characters made visible."""
    visible = "".join(ch if ch.isprintable() else "?" for ch in text[:PREVIEW])
    return f"'{visible}{'…' if len(text) > PREVIEW else ''}'"


def type_name(value: object) -> str:
    """'a string', 'an object', 'null'…: a JSON value's type in a reason."""
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else f"a {type(value).__name__}"
    )
