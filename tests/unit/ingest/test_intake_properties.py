"""Property-based tests of the intake: for every byte string, count or dead letter.

Hypothesis generates arbitrary bytes, arbitrary JSON and mutations of valid events (fields
dropped, retyped or replaced, bytes flipped), at any Kafka timestamp a producer can set; each
batch must pass tests/intake_checks.py:check_intake, which holds the bulk and the per-record
reader to the same verdict and builds every statement downstream. `HYPOTHESIS_PROFILE=thorough`
runs many more examples than the default suite does.
"""

from __future__ import annotations

import json
import os
from typing import Any

import orjson
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.intake_checks import RULES, batch_of, check_intake

settings.register_profile(
    "default", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "thorough", max_examples=5_000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

NOW_MS = 1_795_737_600_000
KAFKA_TS = st.one_of(
    st.integers(NOW_MS - 10**9, NOW_MS + 10**9),  # near now, as most are
    st.sampled_from([-1, 0, 2**63 - 1, 253_402_300_800_000]),  # none, epoch, far beyond
    st.integers(-1, 2**63 - 1),
)
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=80),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)
TIMESTAMPS = st.one_of(
    st.integers(-(2**64), 2**64),
    st.integers(NOW_MS - 10**7, NOW_MS + 10**7),
    st.floats(allow_nan=False),
    st.from_regex(r"-?[0-9]{1,40}(\.[0-9]{1,30})?", fullmatch=True),
    st.datetimes().map(lambda moment: moment.isoformat() + "Z"),
    st.text(max_size=40),
    JSON_VALUES,
)
FIELDS = ("event_id", "user_id", "item_id", "interaction_type", "timestamp", "schema_version")


def _valid(n: int) -> dict[str, Any]:
    return {
        "event_id": f"e{n}",
        "user_id": f"u{n % 7}",
        "item_id": f"i{n % 3}",
        "interaction_type": "view",
        "timestamp": NOW_MS - n,
        "schema_version": 1,
    }


@st.composite
def mutated_events(draw: st.DrawFn) -> bytes:
    """A valid event with some of its fields dropped, replaced or retyped, extra fields
    added, written by one of several encoders, and perhaps some bytes changed."""
    event: dict[str, Any] = _valid(draw(st.integers(0, 1_000)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        change = draw(st.sampled_from(["drop", "replace", "timestamp"]))
        if change == "drop":
            event.pop(name, None)
        elif change == "replace":
            event[name] = draw(JSON_VALUES)
        else:
            event["timestamp"] = draw(TIMESTAMPS)
    event |= draw(st.dictionaries(st.text(max_size=10), JSON_VALUES, max_size=3))
    encoder = draw(st.sampled_from(["orjson", "json", "json-spaced", "json-ascii"]))
    if encoder == "orjson":
        try:
            raw = orjson.dumps(event)
        except (TypeError, orjson.JSONEncodeError):  # integers beyond 64 bits
            raw = json.dumps(event).encode()
    elif encoder == "json-spaced":
        raw = json.dumps(event, indent=draw(st.integers(0, 3))).encode()
    else:
        raw = json.dumps(event, ensure_ascii=encoder == "json-ascii").encode(
            "utf-8", "surrogatepass"
        )
    for _ in range(draw(st.integers(0, 2))):  # byte-level damage
        if raw:
            at = draw(st.integers(0, len(raw) - 1))
            raw = raw[:at] + draw(st.binary(max_size=3)) + raw[at + 1 :]
    return raw


RECORDS = st.one_of(
    st.none(),
    st.binary(max_size=200),
    JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    mutated_events(),
    st.builds(lambda n: orjson.dumps(_valid(n)), st.integers(0, 10**6)),  # valid ones too
)


@given(st.lists(st.tuples(RECORDS, KAFKA_TS), min_size=1, max_size=12))
@example([(b"[" * 1_100, NOW_MS)])
@example(
    [
        (
            b'{"user_id":"u","item_id":"i","interaction_type":"view","timestamp":"'
            + b"9" * 5_000
            + b'"}',
            NOW_MS,
        )
    ]
)
@example([(b"x" * 5_000, NOW_MS)])  # over the test rules' 4,096-byte limit
@example([(orjson.dumps(_valid(1) | {"timestamp": 253_402_300_800_000}), 253_402_300_800_000)])
@example([(b'{"a":"\\ud800"}', NOW_MS), (b'{"user_id":"\\u0000"}', NOW_MS)])
def test_every_record_counts_or_becomes_a_dead_letter(records: list[tuple[Any, int]]) -> None:
    check_intake(batch_of([value for value, _ in records], [stamp for _, stamp in records]))


@given(st.lists(mutated_events(), min_size=1, max_size=20), KAFKA_TS)
def test_mutated_events_are_judged_alike_by_both_readers(values: list[bytes], stamp: int) -> None:
    check_intake(batch_of(list(values), [stamp] * len(values)))


@given(st.lists(st.integers(0, 10**6), unique=True, max_size=30))
def test_valid_events_all_count(numbers: list[int]) -> None:
    values: list[bytes | None] = [orjson.dumps(_valid(n)) for n in numbers]
    verdict = check_intake(batch_of(list(values), [NOW_MS] * len(values)), RULES)
    assert verdict.dead.height == 0 and verdict.events.height == len(values)
