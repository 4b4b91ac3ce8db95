"""Validation: every kind of bad record is dead-lettered with a reason naming the field."""

from __future__ import annotations

import random
from collections.abc import Sequence

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from pulse.ingest.batch import MicroBatch
from pulse.ingest.bulk import read_usual
from pulse.ingest.validate import ValidationRules, validate

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


def _batch(values: Sequence[bytes | None]) -> MicroBatch:
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
    ("missing item_id", _event(item_id=...), "item_id is missing", "item_id"),
    (
        "missing type",
        _event(interaction_type=...),
        "interaction_type is missing",
        "interaction_type",
    ),
    ("user_id a float", _event(user_id=17.5), "user_id must be a string or an integer", "user_id"),
    ("user_id a boolean", _event(user_id=True), "got a boolean", "user_id"),
    (
        "item_id null",
        _event(item_id=None),
        "item_id must be a string or an integer, got null",
        "item_id",
    ),
    (
        "timestamp text",
        _event(timestamp="yesterday"),
        "timestamp 'yesterday' is not epoch",
        "timestamp",
    ),
    (
        "timestamp without a zone",
        _event(timestamp="2026-11-28T10:00:00"),
        "timestamp '2026-11-28T10:00:00' has no UTC offset",
        "timestamp",
    ),
    ("timestamp null", _event(timestamp=None), "timestamp must be epoch milliseconds", "timestamp"),
    ("timestamp bool", _event(timestamp=True), "got a boolean", "timestamp"),
    ("timestamp object", _event(timestamp={"ms": 1}), "got an object", "timestamp"),
    (
        "schema_version text",
        _event(schema_version="1"),
        "schema_version must be an integer, got a string",
        "schema_version",
    ),
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
        "timestamp -5000 is not between the years 1970 and 9998",
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
        "timestamp is out of the 64-bit range",  # orjson reads it as a float
        "timestamp",
    ),
    ("huge string", _event(user_id="u" * 500), "user_id 'uuuu", "user_id"),
    (
        "year 10000",
        _event(timestamp=253_402_300_800_000),
        "is not between the years 1970 and 9998",
        "timestamp",
    ),
    ("over the size limit", _event(item_id="i" * 2_000), "bytes, over the 1024-byte limit", ""),
    ("control characters", _event(user_id="u\x00\x07x"), "user_id 'u??x' is not an id", "user_id"),
    ("odd unicode", _event(item_id="ítem-☃"), "item_id 'ítem-☃' is not an id", "item_id"),
    ("empty id", _event(event_id=""), "event_id '' is not an id", "event_id"),
    (
        "event_id an array",
        _event(event_id=[1]),
        "event_id must be a string or an integer",
        "event_id",
    ),
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


@pytest.mark.parametrize(
    ("record", "reason", "field"),
    [
        (b"[" * 1_100, "not valid JSON", ""),  # json.loads would raise RecursionError
        (b"[" * 600 + b"]" * 600, "not a JSON object but a JSON list", ""),
        (b'{"a":' * 900 + b"1" + b"}" * 900, "user_id is missing", "user_id"),
        (_event(timestamp="9" * 5_000), "timestamp is out of the 64-bit range", "timestamp"),
    ],
    ids=["1,100 brackets", "600 levels", "900 objects", "5,000-digit timestamp"],
)
def test_records_python_cannot_parse_or_convert_are_dead_lettered(
    record: bytes, reason: str, field: str
) -> None:
    rules = ValidationRules(interaction_types=RULES.interaction_types)  # 64 KiB records
    for bulk in (True, False):
        verdict = validate(_batch([record, _event()]).records, rules, bulk=bulk)
        assert verdict.events.height == 1
        dead = verdict.dead.row(0, named=True)
        assert reason in dead["reason"] and dead["field"] == field


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


# --- shapes real producers send: accepted and normalised ----------------------------------

FOUR_FIELDS = {key: GOOD[key] for key in ("user_id", "item_id", "interaction_type", "timestamp")}
SECOND = KAFKA_TS // 1000 - 5  # an epoch second 5 s before the Kafka timestamp

ACCEPTED: list[tuple[str, dict[str, object], dict[str, object]]] = [
    ("the four fields only", FOUR_FIELDS, {"event_id": None, "schema_version": None}),
    (
        "integer ids",
        {**FOUR_FIELDS, "user_id": 17, "item_id": 0},
        {"user_id": "17", "item_id": "0"},
    ),
    ("negative integer id", {**FOUR_FIELDS, "item_id": -3}, {"item_id": "-3"}),
    ("epoch seconds", {**FOUR_FIELDS, "timestamp": SECOND}, {"timestamp": SECOND * 1000}),
    (
        "epoch seconds with a fraction",
        {**FOUR_FIELDS, "timestamp": SECOND + 0.123},
        {"timestamp": SECOND * 1000 + 123},
    ),
    (
        "epoch ms as a float",
        {**FOUR_FIELDS, "timestamp": 1_795_737_590_000.4},
        {"timestamp": 1_795_737_590_000},
    ),
    (
        "epoch ms as digits",
        {**FOUR_FIELDS, "timestamp": "1795737590000"},
        {"timestamp": 1_795_737_590_000},
    ),
    (
        "epoch seconds as digits",
        {**FOUR_FIELDS, "timestamp": f"{SECOND}"},
        {"timestamp": SECOND * 1000},
    ),
    (
        "ISO-8601 with Z",
        {**FOUR_FIELDS, "timestamp": "2026-11-26T23:59:55.250Z"},
        {"timestamp": 1_795_737_595_250},
    ),
    (
        "RFC 3339 with an offset",
        {**FOUR_FIELDS, "timestamp": "2026-11-27T01:59:55+02:00"},
        {"timestamp": 1_795_737_595_000},
    ),
    (
        "ISO-8601 with a space and microseconds",
        {**FOUR_FIELDS, "timestamp": "2026-11-26 23:59:55.000999+00:00"},
        {"timestamp": 1_795_737_595_000},
    ),
    ("null event_id", {**FOUR_FIELDS, "event_id": None}, {"event_id": None}),
    ("integer event_id", {**FOUR_FIELDS, "event_id": 99}, {"event_id": "99"}),
    ("schema_version 1", {**FOUR_FIELDS, "schema_version": 1}, {"schema_version": 1}),
]


@pytest.mark.parametrize(("kind", "record", "expected"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_real_producer_shapes_are_accepted_and_normalised(
    kind: str, record: dict[str, object], expected: dict[str, object]
) -> None:
    verdict = validate(_batch([orjson.dumps(record)]).records, RULES)
    assert verdict.dead["reason"].to_list() == [], kind
    event = verdict.events.row(0, named=True)
    assert {name: event[name] for name in expected} == expected
    assert verdict.ignored_fields == {}


def test_the_seconds_and_milliseconds_boundary_is_documented_and_applied() -> None:
    # 1e11 - 1 is read as seconds (year 5138), 1e11 as milliseconds (March 1973).
    rules = ValidationRules(
        interaction_types=RULES.interaction_types, max_age_ms=2**62, max_lead_ms=2**62
    )
    records = [
        orjson.dumps({**FOUR_FIELDS, "timestamp": t}) for t in (99_999_999_999, 100_000_000_000)
    ]
    verdict = validate(_batch(records).records, rules)
    assert verdict.events["timestamp"].to_list() == [99_999_999_999_000, 100_000_000_000]


def test_extra_fields_are_ignored_and_counted_per_field() -> None:
    records = [
        orjson.dumps({**FOUR_FIELDS, "session_id": "s1"}),
        orjson.dumps({**FOUR_FIELDS, "session_id": "s2", "a.b": 1, "$set": {"x": 1}}),
        orjson.dumps({**FOUR_FIELDS, "session_id": "s3", "user_id": None}),  # dead: not counted
        orjson.dumps(FOUR_FIELDS),
    ]
    verdict = validate(_batch(records).records, RULES)
    assert verdict.events.height == 3
    assert verdict.dead["reason"].to_list() == ["user_id must be a string or an integer, got null"]
    assert verdict.ignored_fields == {"$set": 1, "a.b": 1, "session_id": 2}


def test_events_without_event_id_are_never_duplicates_of_each_other() -> None:
    verdict = validate(_batch([orjson.dumps(FOUR_FIELDS)] * 3).records, RULES)
    assert verdict.events.height == 3 and verdict.dead.height == 0


# --- the bulk reader (pulse/ingest/bulk.py) agrees with the per-record reader --------------

_T = KAFKA_TS - 5_000
_REST = f'"item_id":"i1","interaction_type":"view","timestamp":{_T}'.encode()
TRICKY: list[bytes] = [
    b'{"user_id":"a","user_id":"b",' + _REST + b"}",  # repeated key: orjson keeps the last
    b'{ "user_id" :\t"u1" , ' + _REST + b" }",  # spaces and tabs between tokens
    b'{\n"user_id":"u1",' + _REST + b"}",  # a newline between tokens
    b'{"user_id":"\\u0041",' + _REST + b"}",  # an escape that reads as "A"
    b'{"user_id":"\\ud800",' + _REST + b"}",  # a lone surrogate
    b'{"user_id":"u\\"q",' + _REST + b"}",  # an escaped quote
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":01795737595000}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":1795737595}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":-1795737595000}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":9223372036854775807}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":9223372036854775808}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":1795737595000.0}',
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view","timestamp":1.795737595e12}',
    b'{"event_id":null,"user_id":"u1",' + _REST + b"}",
    b'{"schema_version":null,"user_id":"u1",' + _REST + b"}",
    b'{"schema_version":1,"user_id":"u1",' + _REST + b"}",
    b'{"user_id":"u1",' + _REST + b',"extra":{"user_id":true}}',
    b'{"user_id":"u1",' + _REST + b",}",
    b'{"USER_ID":"u1",' + _REST + b"}",
    b"{}",
    b"\xef\xbb\xbf" + b'{"user_id":"u1",' + _REST + b"}",  # a byte-order mark
    b'{"user_id":"\xc3\xbc",' + _REST + b"}",  # a non-ASCII id
    b'{"user_id":"a",' + _REST + b'} {"user_id":"b",' + _REST + b"}",  # two objects
    b'  {"user_id":"u1",' + _REST + b"}  ",
    b'{"user_id":"view","item_id":"user_id","interaction_type":"view","timestamp":'
    + str(_T).encode()
    + b"}",
    b'{"user_id":true,' + _REST + b"}",
    b'{"user_id":17,' + _REST + b"}",
    b'{"user_id":"u1","item_id":"i1","interaction_type":"view"}',
]


def _mutations(seed: int, count: int) -> list[bytes]:
    """Good records broken or reshaped at random: the cases nobody thought to list."""
    rng = random.Random(seed)
    texts = [
        orjson.dumps({**GOOD, "event_id": f"m{n}", "user_id": f"u{n % 7}"}).decode()
        for n in range(count)
    ]
    edits = [
        lambda t: t.replace('"', "", 1),
        lambda t: t.replace(":", " : ", rng.randrange(1, 4)),
        lambda t: t.replace(",", ",\n", 1),
        lambda t: t.replace('"u', '"\\u0075', 1),
        lambda t: t.replace('"view"', rng.choice(["true", "null", "1", '"VIEW"', '"click"'])),
        lambda t: t.replace('"schema_version":1', rng.choice(['"schema_version":1.0', ""])),
        lambda t: t.replace(f"{_T}", rng.choice([f"{_T}.5", f'"{_T}"', f"{_T // 1000}", "0"])),
        lambda t: t[:-1] + ',"user_id":"dup"}',
        lambda t: t[:-1] + rng.choice([',"x":[1,2]}', ',"y":null}', "}}", ""]),
        lambda t: t.replace("u", "ü", 1),
    ]
    return [(rng.choice(edits)(text) if rng.random() < 0.7 else text).encode() for text in texts]


def test_bulk_and_per_record_reading_give_the_same_verdict() -> None:
    listed = [value for _, value, _, _ in BAD_RECORDS] + [orjson.dumps(r) for _, r, _ in ACCEPTED]
    values = [_event(event_id=f"g{n}") for n in range(50)] + listed + TRICKY + _mutations(7, 2_000)
    records = _batch(values).records
    fast, _ = read_usual(records.get_column("value"), RULES.max_record_bytes)
    bulk, one_by_one = validate(records, RULES), validate(records, RULES, bulk=False)
    assert fast.height > 600, "the bulk path must be exercised"
    assert_frame_equal(bulk.events, one_by_one.events)
    assert_frame_equal(bulk.dead, one_by_one.dead)
    assert bulk.ignored_fields == one_by_one.ignored_fields
    assert one_by_one.dead.height > 500 and one_by_one.events.height > 600


def test_records_outside_the_usual_shape_are_left_to_the_per_record_reader() -> None:
    values = pl.Series([_event(), *TRICKY], dtype=pl.Binary)
    _, rows = read_usual(values, RULES.max_record_bytes)
    taken = {values[row] for row in rows.to_list()}
    assert _event() in taken
    assert {TRICKY[1], TRICKY[21], TRICKY[24]} <= taken  # spaces; non-ASCII; a value like a key
    assert not taken & {TRICKY[n] for n in (0, 2, 3, 4, 6, 7, 10, 11, 13, 16, 25, 26, 27)}
