"""Events from a producer we did not write: the mission's four fields in every shape producers
send, through a plain confluent-kafka producer, counted exactly next to a ground truth."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import numpy as np
import orjson
import polars as pl
import pytest
from confluent_kafka import Producer

from pulse.config import Settings
from pulse.events import SCHEMA
from pulse.ingest.ground_truth import GroundTruth
from pulse.ingest.wire import REQUIRED
from pulse.store.client import database, mongo_client
from pulse.store.schema import DEAD_LETTERS, LEDGER
from tests.integration.reconcile import assert_matches_truth, drain_until_caught_up

pytestmark = pytest.mark.integration

TYPES = ("view", "click", "add_to_cart", "purchase")


def _iso(ms: int, offset_hours: int) -> str:
    """'2026-11-28T10:00:00.123Z' or '2026-11-28T12:00:00.123+02:00' for the same instant."""
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC).astimezone(
        timezone(timedelta(hours=offset_hours))
    )
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _shaped(shape: int, user: int, item: int, kind: str, ms: int) -> dict[str, Any]:
    """One valid event in one of four producer shapes; all mean the same (user, item, kind, ms)."""
    if shape == 0:  # the mission's four fields, string ids, epoch milliseconds
        return {
            "user_id": str(user),
            "item_id": f"i{item}",
            "interaction_type": kind,
            "timestamp": ms,
        }
    if shape == 1:  # ISO-8601 / RFC 3339 time, with Z or an offset
        stamp = _iso(ms, offset_hours=2 if user % 2 else 0)
        return {
            "user_id": str(user),
            "item_id": f"i{item}",
            "interaction_type": kind,
            "timestamp": stamp,
        }
    if shape == 2:  # integer user id, epoch seconds with a fraction, one extra field
        return {
            "user_id": user,
            "item_id": f"i{item}",
            "interaction_type": kind,
            "timestamp": ms / 1000,
            "session_id": f"s{user}",
        }
    # full legacy shape with event id and schema version, plus extra fields
    return {
        "event_id": f"e{ms}-{user}-{item}",
        "user_id": str(user),
        "item_id": f"i{item}",
        "interaction_type": kind,
        "timestamp": ms,
        "schema_version": 1,
        "session_id": f"s{user}",
        "referrer": {"site": "x.example"},
    }


MALFORMED: list[tuple[dict[str, Any] | bytes, str]] = [
    ({"item_id": "i1", "interaction_type": "view", "timestamp": 0}, "user_id is missing"),
    (
        {
            "user_id": "1",
            "item_id": "i1",
            "interaction_type": "view",
            "timestamp": "2026-11-28T10:00:00",
        },
        "has no UTC offset",
    ),
    (
        {"user_id": "1", "item_id": "i1", "interaction_type": "teleport", "timestamp": 0},
        "is not one of",
    ),
    (b"{not json", "not valid JSON"),
    (
        {"user_id": 1.5, "item_id": "i1", "interaction_type": "view", "timestamp": 0},
        "string or an integer",
    ),
]


def test_a_plain_producer_in_every_shape_is_counted_exactly(pipeline: Settings) -> None:
    rng = np.random.default_rng(13)
    n = 12_000
    now_ms = int(time.time() * 1000)
    users = rng.integers(1, 300, n)
    items = rng.integers(1, 60, n)
    kinds = rng.choice(TYPES, n)
    stamps = now_ms - rng.integers(0, 180_000, n)
    malformed_rows = set(rng.choice(n, n // 100, replace=False).tolist())

    producer = Producer({"bootstrap.servers": pipeline.kafka.bootstrap_servers, "linger.ms": 20})
    valid: list[tuple[str, str, str, int]] = []
    expected_reasons: Counter[str] = Counter()
    carried: Counter[str] = Counter()
    for row in range(n):
        if row in malformed_rows:
            record, reason = MALFORMED[row % len(MALFORMED)]
            value = record if isinstance(record, bytes) else orjson.dumps(record)
            expected_reasons[reason] += 1
        else:
            user, item, kind, ms = (
                int(users[row]),
                int(items[row]),
                str(kinds[row]),
                int(stamps[row]),
            )
            shape = row % 4
            value = orjson.dumps(_shaped(shape, user, item, kind, ms))
            valid.append((str(user), f"i{item}", kind, ms))
            carried.update(["session_id"] * (shape >= 2) + ["referrer"] * (shape == 3))
        producer.produce(pipeline.kafka.topic, value, key=str(users[row]).encode())
        producer.poll(0)
    assert producer.flush(30) == 0

    truth = GroundTruth()
    truth.add(
        pl.DataFrame(
            valid,
            schema={name: SCHEMA[name] for name in REQUIRED},
            orient="row",
        ),
        malformed=len(malformed_rows),
    )

    drain_until_caught_up(pipeline, max_batch_events=3_000)

    client = mongo_client(pipeline.mongo)
    try:
        db = database(client, pipeline.mongo)
        assert_matches_truth(db, truth.to_dict())
        reasons = [doc["reason"] for doc in db[DEAD_LETTERS].find({}, {"reason": 1})]
        for reason, count in expected_reasons.items():
            assert sum(reason in seen for seen in reasons) == count, (reason, reasons[:10])
        ignored: Counter[str] = Counter()
        for entry in db[LEDGER].find({}, {"ignored_fields": 1}):
            for kept in entry.get("ignored_fields", []):
                ignored[kept["field"]] += kept["records"]
        assert ignored == carried  # extra fields: ignored, and counted per batch in the ledger
    finally:
        client.close()
