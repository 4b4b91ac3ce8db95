"""Produce and consume through the real local broker with confluent-kafka."""

from __future__ import annotations

import json
import logging
import uuid
from collections import Counter

import pytest
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, MemberDescription  # type: ignore[attr-defined]

from pulse.config import Settings, load_settings
from pulse.kafka.clients import admin_client, consumer, ensure_topic, offset_bounds, producer
from pulse.kafka.source import fetched_behind
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_topic_is_created_with_the_requested_partitions(
    live_stack: Settings, kafka_topic: str
) -> None:
    metadata = admin_client(live_stack.kafka).list_topics(kafka_topic, timeout=10)
    assert len(metadata.topics[kafka_topic].partitions) == 3
    # A second call is harmless and reports that it created nothing.
    assert ensure_topic(live_stack.kafka, kafka_topic, partitions=3) is False


def _bounds_or_error(admin: AdminClient, topic: str) -> dict[int, tuple[int, int]] | str:
    try:
        return offset_bounds(admin, topic, [0, 1, 2], 10)
    except KafkaException as error:
        return str(error)


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_an_admin_client_asked_by_ensure_topic_asks_next_on_a_learned_broker(
    live_stack: Settings, kafka_topic: str
) -> None:
    """The consumer opens its admin client this way, so that the offsets a handover asks for
    never wait behind librdkafka's dropped bootstrap connection (1-3 s). Asked first instead,
    about a third of fresh clients here lose a request on it, so ten clients show it."""
    wait_until(
        lambda: _bounds_or_error(admin_client(live_stack.kafka), kafka_topic),
        timeout=30,
        what="the new topic's partition leaders answering",
        done=lambda seen: isinstance(seen, dict),
    )
    for attempt in range(10):
        log = logging.getLogger(f"{__name__}.admin{attempt}")
        log.propagate = False
        log.setLevel(logging.DEBUG)
        log.addHandler(seen := _Lines())
        config: dict[str, str | int | float | bool] = {**live_stack.kafka.client_config()}
        config["debug"] = "broker"
        admin = AdminClient(config, logger=log)
        ensure_topic(live_stack.kafka, kafka_topic, admin=admin)
        admin.poll(0)  # delivers the client's log lines so far
        seen.lines.clear()
        assert offset_bounds(admin, kafka_topic, [0, 1, 2], 10) == dict.fromkeys(range(3), (0, 0))
        admin.poll(0)
        lost = [line for line in seen.lines if "Broker handle destroyed" in line]
        assert not lost, f"client {attempt} lost a request on its bootstrap connection: {lost}"


def test_every_produced_message_is_consumed_once_with_its_key(
    live_stack: Settings, kafka_topic: str
) -> None:
    sent = {f"user-{n % 17}".encode(): 0 for n in range(1_000)}
    delivered: list[int] = []
    out = producer(live_stack.kafka)
    for n in range(1_000):
        key = f"user-{n % 17}".encode()
        sent[key] += 1
        out.produce(
            kafka_topic,
            key=key,
            value=f"event-{n}".encode(),
            on_delivery=lambda err, msg: delivered.append(0 if err else 1),
        )
    assert out.flush(30) == 0
    assert sum(delivered) == 1_000

    reader = consumer(live_stack.kafka, group=f"{kafka_topic}-reader")
    reader.subscribe([kafka_topic])
    values: list[bytes] = []
    keys: Counter[bytes] = Counter()
    partitions_by_key: dict[bytes, set[int]] = {}
    try:
        for _ in range(60):
            for message in reader.consume(num_messages=500, timeout=1.0):
                assert message.error() is None
                got_key, value = message.key(), message.value()
                assert isinstance(got_key, bytes) and isinstance(value, bytes)
                keys[got_key] += 1
                values.append(value)
                partitions_by_key.setdefault(got_key, set()).add(message.partition() or 0)
            if len(values) >= 1_000:
                break
    finally:
        reader.close()

    assert len(values) == 1_000
    assert len(set(values)) == 1_000
    assert dict(keys) == sent
    # The key decides the partition: one user's events stay in order on one partition.
    assert all(len(parts) == 1 for parts in partitions_by_key.values())
    assert len({p for parts in partitions_by_key.values() for p in parts}) > 1


def test_a_consumer_configured_through_extra_config_runs_with_it(
    live_stack: Settings, kafka_topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker reports the client.id a member joined with: the extra setting took effect."""
    client_id = f"pulse-extra-{uuid.uuid4().hex[:8]}"
    extra = {"client.id": client_id, "socket.keepalive.enable": True, "fetch.wait.max.ms": 100}
    monkeypatch.setenv("PULSE_KAFKA_BOOTSTRAP_SERVERS", live_stack.kafka.bootstrap_servers)
    monkeypatch.setenv("PULSE_KAFKA_EXTRA_CONFIG", json.dumps(extra))
    settings = load_settings()
    group = f"extra-{uuid.uuid4().hex[:8]}"
    reader = consumer(settings.kafka, group)
    reader.subscribe([kafka_topic])
    admin = admin_client(settings.kafka)
    try:
        members = wait_until(
            lambda: (reader.poll(0.2), _members(admin, group))[1],
            timeout=30,
            what="the consumer joining its group",
        )
    finally:
        reader.close()
    assert [member.client_id for member in members] == [client_id]


def _members(admin: AdminClient, group: str) -> list[MemberDescription]:
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=5)
    except KafkaException:
        return []
    return [m for m in description.members if m.assignment.topic_partitions]


def test_a_fetch_that_saw_more_records_says_so_without_asking_the_broker(
    live_stack: Settings, kafka_topic: str
) -> None:
    out = producer(live_stack.kafka)
    for n in range(50):
        out.produce(kafka_topic, value=f"event-{n}".encode(), partition=0)
    assert out.flush(30) == 0
    reader = consumer(live_stack.kafka, group=f"{kafka_topic}-reader")
    try:
        # Before any fetch nothing is known: no claim that more is on its way.
        assert not fetched_behind(reader, kafka_topic, [0])
        reader.assign([TopicPartition(kafka_topic, 0, 0)])
        first = wait_until(lambda: reader.consume(1, timeout=1), timeout=30, what="a record")
        assert first[0].offset() == 0
        assert fetched_behind(reader, kafka_topic, [0])
        offsets: list[int | None] = [first[0].offset()]

        def read_more() -> list[int | None]:
            offsets.extend(message.offset() for message in reader.consume(100, timeout=1))
            return offsets

        wait_until(read_more, timeout=30, what="all 50 records", done=lambda seen: len(seen) >= 50)
        assert offsets == list(range(50))
        assert not fetched_behind(reader, kafka_topic, [0, 1])
    finally:
        reader.close()
