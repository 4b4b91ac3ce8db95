"""Windowed runs, as the scheduled deployments make them: each works exactly its window."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from flows.aggregate import aggregate_interactions
from flows.generate import generate_interactions
from pulse.config import Settings
from pulse.generate.params import GeneratorParams
from pulse.store.client import database, mongo_client
from tests.integration.reconcile import assert_matches_truth, use_settings_env

pytestmark = pytest.mark.integration


def _kafka_times(settings: Settings) -> list[int]:
    """Kafka timestamps (ms) of every record in the topic."""
    topic = settings.kafka.topic
    reader = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": topic})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {p: reader.get_watermark_offsets(TopicPartition(topic, p))[1] for p in partitions}
        reader.assign([TopicPartition(topic, p, 0) for p in partitions if ends[p]])
        times: list[int] = []
        while len(times) < sum(ends.values()):
            batch = reader.consume(num_messages=10_000, timeout=5)
            assert batch, f"read {len(times)} of {sum(ends.values())} records"
            times += [message.timestamp()[1] for message in batch if message.error() is None]
    finally:
        reader.close()
    return times


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def test_a_windowed_generator_streams_its_window_and_a_windowed_consumer_drains_it(
    pipeline: Settings, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings_env(monkeypatch, pipeline)
    truth_path = tmp_path / "truth.json"
    topic = pipeline.kafka.topic

    def stream() -> dict[str, Any]:
        return generate_interactions(
            GeneratorParams(batch_size=100, interval_seconds=0.5, topic=topic),
            window_seconds=6.0,
            handover_seconds=3.0,
            ground_truth_path=str(truth_path),
        )

    def drain() -> dict[str, Any]:
        return aggregate_interactions(window_seconds=20.0, handover_seconds=3.0, topic=topic)

    # Started together, as the schedule starts them; each waits for its own window. Each thread
    # runs in a copy of this context, so its flow reports to the stack's Prefect server
    # (prefect_api) instead of starting a temporary server of its own.
    with ThreadPoolExecutor(max_workers=2) as pool:
        produced = pool.submit(contextvars.copy_context().run, stream)
        drained = pool.submit(contextvars.copy_context().run, drain)
        sent, counted = produced.result(), drained.result()

    start, end = _ms(sent["window"]["start"]), _ms(sent["window"]["end"])
    times = _kafka_times(pipeline)
    assert len(times) == sent["records"] == 1_200  # 12 bursts of 100: 200 events/s for 6 s
    assert start <= min(times) and max(times) <= end + 1_000  # the last burst is on its way

    assert counted["records"] == sent["records"] and counted["lag"]  # it held partitions
    assert not any(counted["lag"].values())
    assert _ms(counted["window"]["end"]) - _ms(counted["window"]["start"]) == 20_000
    # A windowed run hands over at its window's end: what of its events still waits for an
    # entity flush then (events of its last seconds, when no flush starts) is its successor's
    # to re-read and write. The next window's run, here the one after it.
    successor = aggregate_interactions(topic=topic)
    assert successor["records"] == 0 and not any(successor["lag"].values())
    with mongo_client(pipeline.mongo) as client:
        assert_matches_truth(
            database(client, pipeline.mongo), orjson.loads(truth_path.read_bytes())
        )
