"""The generate-interactions flow on the real broker and Prefect server.

An independent consumer (confluent-kafka directly, none of Pulse's code) reads the topic back
and the result is checked against the flow's ground-truth file, exactly.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.generate import generate_interactions
from pulse.config import Settings
from pulse.events import FIELDS
from pulse.generate.params import GeneratorParams
from pulse.kafka.producer import InteractionProducer

pytestmark = pytest.mark.integration

TYPES = {"view", "click", "add_to_cart", "purchase"}


def _read_back(settings: Settings, topic: str, expected: int) -> list[tuple[bytes, bytes, int]]:
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"{topic}-independent",
            "auto.offset.reset": "earliest",
        }
    )
    reader.subscribe([topic])
    records: list[tuple[bytes, bytes, int]] = []
    try:
        for _ in range(120):
            for message in reader.consume(num_messages=5_000, timeout=0.5):
                assert message.error() is None
                key, value = message.key(), message.value()
                assert isinstance(key, bytes) and isinstance(value, bytes)
                records.append((key, value, message.partition() or 0))
            if len(records) >= expected:
                break
        assert not reader.consume(num_messages=10, timeout=1.0), "more records than sent"
    finally:
        reader.close()
    return records


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or tuple(event) != FIELDS:
        return None
    valid = (
        event["interaction_type"] in TYPES
        and isinstance(event["timestamp"], int)
        and event["schema_version"] == 1
    )
    return event if valid else None


def _artifact_of(run_id: str, key: str) -> str:
    """The run's artifact `key`, among the latest ones: other test files' runs write theirs
    to the same server meanwhile."""
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=50,
        )
    ours = [str(artifact.data) for artifact in artifacts if run_id in str(artifact.data)]
    assert ours, f"no artifact {key} of generator run {run_id}"
    return ours[0]


def test_flow_delivers_exactly_what_its_ground_truth_says(
    live_stack: Settings, prefect_api: str, kafka_topic: str, tmp_path: Path
) -> None:
    truth_path = tmp_path / "truth.json"
    summary = generate_interactions(
        GeneratorParams(
            batch_size=2_000,
            interval_seconds=0.25,
            duration_seconds=2.0,
            seed=11,
            users=300,
            items=50,
            late_fraction=0.05,
            malformed_fraction=0.02,
            topic=kafka_topic,
        ),
        ground_truth_path=str(truth_path),
    )
    # R = 2000 / 0.25 = 8000 events/s over T = 2 s: R*T records, spaced as asked.
    assert summary["records"] == summary["delivered"] == 16_000
    assert summary["failed"] == summary["undelivered"] == 0
    assert summary["bursts"] == 8
    assert summary["requested_rate"] == 8_000

    records = _read_back(live_stack, kafka_topic, 16_000)
    assert len(records) == 16_000
    events = [event for _, value, _ in records if (event := _decode(value)) is not None]
    truth = orjson.loads(truth_path.read_bytes())
    assert len(records) - len(events) == truth["malformed"] == summary["malformed"] > 0
    assert len(events) == truth["events"] == summary["events"]
    assert len({event["event_id"] for event in events}) == len(events)

    keyed = {value: key for key, value, _ in records}
    partitions: dict[bytes, set[int]] = {}
    for key, _, partition in records:
        partitions.setdefault(key, set()).add(partition)
    for event in events:
        assert keyed[orjson.dumps(event)] == event["user_id"].encode()
    assert all(len(found) == 1 for found in partitions.values())  # a user stays on one partition

    assert dict(Counter(e["user_id"] for e in events)) == truth["by_user"]
    assert dict(Counter(e["item_id"] for e in events)) == truth["by_item"]
    assert dict(Counter(e["interaction_type"] for e in events)) == truth["by_type"]
    assert summary["by_type"] == truth["by_type"]
    assert truth["late"] > 0

    report = _artifact_of(summary["run_id"], "generator-run")
    assert "16,000" in report


def test_undeliverable_records_are_counted_not_dropped(live_stack: Settings) -> None:
    # The broker refuses to auto-create topics, so these records can never be delivered.
    producer = InteractionProducer(
        live_stack.kafka, topic="no-such-topic-for-pulse", **{"message.timeout.ms": 1500}
    )
    producer.send([b"u1", b"u2", b"u3"], [b"a", b"b", b"c"])
    assert producer.flush(15) == 0
    assert producer.failed == 3
    assert producer.delivered == 0
    assert sum(producer.errors.values()) == 3
