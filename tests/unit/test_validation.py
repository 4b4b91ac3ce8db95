"""Validation: every kind of bad record is dead-lettered with a reason naming the field."""

from __future__ import annotations

import orjson
import polars as pl
import pytest

from tasks.batch import MicroBatch
from tasks.validation import ValidationRules, validate

KAFKA_TS = 1_795_737_600_000
RULES = ValidationRules(
    interaction_types=("view", "click", "add_to_cart", "purchase"),
    max_record_bytes=1_024,
    max_age_ms=3_600_000,
    max_lead_ms=60_000,
)
GOOD = {
    "event_id": "run-1",
    "user_id": "u1",
    "item_id": "i1",
    "interaction_type": "view",
    "timestamp": KAFKA_TS - 5_000,
    "schema_version": 1,
}


def _event(**changes: object) -> bytes:
    event = {**GOOD, **changes}
    return orjson.dumps({key: value for key, value in event.items() if value is not ...})


def _batch(values: list[bytes | None]) -> MicroBatch:
    n = len(values)
    return MicroBatch.from_columns("t", [0] * n, list(range(n)), [KAFKA_TS] * n, [b"k"] * n, values)


BAD_RECORDS: list[tuple[str, bytes | None, str, str]] = [
    ("not JSON", b"{not json", "not valid JSON", ""),
    ("empty", b"", "record is empty", ""),
    ("null value", None, "record is empty", ""),
    ("binary", b"\x00\xff\xfe\x01garbage", "not UTF-8 text", ""),
    ("JSON array", b"[1, 2, 3]", "not a JSON object but a JSON list", ""),
    ("JSON scalar", b"42", "not a JSON object but a JSON int", ""),
    ("JSON string", b'"hello"', "not a JSON object but a JSON str", ""),
    ("missing user_id", _event(user_id=...), "user_id is missing", "user_id"),
    ("missing timestamp", _event(timestamp=...), "timestamp is missing", "timestamp"),
    ("user_id a number", _event(user_id=17), "user_id must be a string, got a int", "user_id"),
    ("item_id null", _event(item_id=None), "item_id must be a string, got null", "item_id"),
    ("timestamp text", _event(timestamp="yesterday"), "timestamp must be an integer", "timestamp"),
    (
        "timestamp float",
        _event(timestamp=1.5),
        "timestamp must be an integer, got a float",
        "timestamp",
    ),
    ("timestamp bool", _event(timestamp=True), "got a boolean", "timestamp"),
    ("schema_version 2", _event(schema_version=2), "schema_version 2 is not 1", "schema_version"),
    (
        "unknown type",
        _event(interaction_type="teleport"),
        "interaction_type 'teleport' is not one of",
        "interaction_type",
    ),
    (
        "negative timestamp",
        _event(timestamp=-5),
        "timestamp -5 is more than 3600 s before",
        "timestamp",
    ),
    (
        "far-future timestamp",
        _event(timestamp=KAFKA_TS + 86_400_000),
        "s after its Kafka timestamp",
        "timestamp",
    ),
    (
        "NaN timestamp",
        b'{"event_id":"e","user_id":"u","item_id":"i","interaction_type":"view","timestamp":NaN,"schema_version":1}',
        "timestamp is not a finite number",
        "timestamp",
    ),
    (
        "huge integer",
        b'{"event_id":"e","user_id":"u","item_id":"i","interaction_type":"view","timestamp":123456789012345678901234567890,"schema_version":1}',
        "timestamp must be an integer",  # orjson reads it as a float
        "timestamp",
    ),
    ("huge string", _event(user_id="u" * 500), "user_id 'uuuu", "user_id"),
    ("over the size limit", _event(item_id="i" * 2_000), "bytes, over the 1024-byte limit", ""),
    ("control characters", _event(user_id="u\x00\x07x"), "user_id 'u??x' is not an id", "user_id"),
    ("odd unicode", _event(item_id="ítem-☃"), "item_id 'ítem-☃' is not an id", "item_id"),
    ("extra field", _event(color="red"), "unexpected field 'color'", "color"),
    ("key with a dot", _event(**{"a.b": 1}), "unexpected field 'a.b'", "a.b"),
    ("key with a dollar", _event(**{"$set": {"x": 1}}), "unexpected field '$set'", "$set"),
    ("empty id", _event(event_id=""), "event_id '' is not an id", "event_id"),
    (
        "object as type",
        _event(interaction_type={"a": 1}),
        "interaction_type must be a string, got an object",
        "interaction_type",
    ),
]


@pytest.mark.parametrize(
    ("kind", "value", "reason", "field"), BAD_RECORDS, ids=[b[0] for b in BAD_RECORDS]
)
def test_bad_record_is_dead_lettered_with_its_reason(
    kind: str, value: bytes | None, reason: str, field: str
) -> None:
    verdict = validate(_batch([_event(), value, _event(event_id="run-2")]).records, RULES)
    assert verdict.events["event_id"].to_list() == ["run-1", "run-2"], kind
    assert verdict.dead.height == 1
    dead = verdict.dead.row(0, named=True)
    assert reason in dead["reason"]
    assert dead["field"] == field
    assert dead["offset"] == 1 and dead["value"] == value  # raw bytes kept for inspection


def test_at_least_twenty_kinds_of_bad_input_are_covered() -> None:
    assert len(BAD_RECORDS) >= 20


def test_a_duplicate_event_id_keeps_the_first_and_dead_letters_the_rest() -> None:
    verdict = validate(_batch([_event(), _event(user_id="u2"), _event()]).records, RULES)
    assert verdict.events.height == 1 and verdict.events["user_id"][0] == "u1"
    assert verdict.dead["reason"].to_list() == ["duplicate event_id run-1 within the batch"] * 2
    assert verdict.dead["offset"].to_list() == [1, 2]


def test_valid_events_keep_their_values_partition_and_offset() -> None:
    verdict = validate(
        _batch([_event(), _event(event_id="run-9", interaction_type="purchase")]).records, RULES
    )
    assert verdict.dead.height == 0
    assert verdict.events.select("event_id", "interaction_type", "offset").rows() == [
        ("run-1", "view", 0),
        ("run-9", "purchase", 1),
    ]
    assert verdict.events.schema["timestamp"] == pl.Int64


def test_verdict_does_not_depend_on_consumption_order() -> None:
    values = [_event(event_id=f"e{n % 5}", user_id=f"u{n}") for n in range(12)]
    ordered = MicroBatch.from_columns(
        "t", [n % 3 for n in range(12)], list(range(12)), [KAFKA_TS] * 12, [b"k"] * 12, values
    )
    shuffled_rows = [7, 3, 11, 0, 5, 9, 1, 10, 2, 8, 4, 6]
    shuffled = MicroBatch.from_columns(
        "t",
        [n % 3 for n in shuffled_rows],
        shuffled_rows,
        [KAFKA_TS] * 12,
        [b"k"] * 12,
        [values[n] for n in shuffled_rows],
    )
    first, second = validate(ordered.records, RULES), validate(shuffled.records, RULES)
    assert first.events.equals(second.events)
    assert first.dead.equals(second.dead)


def test_an_empty_batch_gives_empty_frames() -> None:
    verdict = validate(_batch([]).records, RULES)
    assert verdict.events.height == 0 and verdict.dead.height == 0
