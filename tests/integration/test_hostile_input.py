"""The worst producer, through Kafka: records that stopped the consumer for good, two topics
in one database, a rule document that does not validate, a batch (or batches waiting for an
entity flush) Kafka no longer holds.

Each bad set sits next to 1,000 good events in one partition; two `pulse consume` runs in a
row must exit 0, count exactly the good events and dead-letter the rest (issue 23)."""

from __future__ import annotations

import logging
import time

import orjson
import pytest
from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from pulse.config import Settings, load_settings
from pulse.kafka.clients import delete_topic, ensure_topic
from pulse.pipeline.consumer import consuming
from pulse.pipeline.drain import drain
from pulse.store import reads
from pulse.store.client import database, mongo_client
from pulse.store.schema import ALERT_RULES, DEAD_LETTERS, LEDGER, LOST_RECORDS, TOTALS
from tests.integration.reconcile import drain_until_caught_up, run_pulse, subprocess_env

pytestmark = pytest.mark.integration

GOOD = 1_000


def _event(n: int, now_ms: int) -> bytes:
    return orjson.dumps(
        {
            "user_id": f"u{n % 50}",
            "item_id": f"i{n % 7}",
            "interaction_type": "view",
            "timestamp": now_ms,
        }
    )


def _produce(settings: Settings, topic: str, values: list[bytes], partition: int = 0) -> None:
    producer = Producer(
        {"bootstrap.servers": settings.kafka.bootstrap_servers, "message.max.bytes": 2_000_000}
    )
    for value in values:
        while True:
            try:
                producer.produce(topic, value, partition=partition)
                break
            except BufferError:
                producer.poll(1.0)
    assert producer.flush(60) == 0


HOSTILE = {
    "1,100 brackets": [b"[" * 1_100],
    "5,000-digit timestamp": [
        orjson.dumps(
            {"user_id": "u1", "item_id": "i1", "interaction_type": "view", "timestamp": "9" * 5_000}
        )
    ],
    "40 records of 900 KB": [b"x" * 900_000] * 40,
    "1,000 records of 20 KB": [b"y" * 20_000] * 1_000,
}


def test_hostile_records_are_dead_lettered_and_the_good_ones_counted(pipeline: Settings) -> None:
    """Each bad set in a partition of its own, next to 1,000 good events there."""
    now_ms = int(time.time() * 1000)
    good = [_event(n, now_ms) for n in range(GOOD)]
    for partition, bad in enumerate(HOSTILE.values()):
        _produce(pipeline, pipeline.kafka.topic, good[:500] + bad + good[500:], partition)
    env = subprocess_env(pipeline)
    for run in (1, 2):
        result = run_pulse("consume", "--time-budget", "120", env=env, timeout=300)
        assert result.returncode == 0, f"run {run}: {result.stdout[-1500:]}{result.stderr[-1500:]}"
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        figures = reads.totals(db)
        assert figures is not None
        bad_records = sum(len(bad) for bad in HOSTILE.values())
        assert (figures.events, figures.dead_lettered) == (GOOD * len(HOSTILE), bad_records)
        for partition, (kind, bad) in enumerate(HOSTILE.items()):
            dead = list(
                db[DEAD_LETTERS].find({"partition": partition}, {"raw": 1, "field": 1, "size": 1})
            )
            assert len(dead) == len(bad), kind
            for doc in dead:
                # refused whole: a bounded prefix; refused for a field: whole, within the limit
                limit = pipeline.consumer.max_record_bytes if doc.get("field") else 1_024
                assert len(doc["raw"]) <= min(limit, doc["size"]), kind


def test_two_topics_consumed_into_one_database_add_up(pipeline: Settings) -> None:
    now_ms = int(time.time() * 1000)
    second = f"{pipeline.kafka.topic}-a"
    ensure_topic(pipeline.kafka, second, partitions=1)
    try:
        _produce(pipeline, pipeline.kafka.topic, [_event(n, now_ms) for n in range(1_000)])
        _produce(pipeline, second, [_event(n, now_ms) for n in range(100)])
        drain_until_caught_up(pipeline)
        other = load_settings(
            kafka={"topic": second, "consumer_group": pipeline.kafka.consumer_group},
            mongo={"database": pipeline.mongo.database},
        )
        drain_until_caught_up(other)
    finally:
        delete_topic(pipeline.kafka, second)
    with mongo_client(pipeline.mongo) as client:
        figures = reads.totals(database(client, pipeline.mongo))
    assert figures is not None and figures.events == 1_100


def test_a_rule_document_that_does_not_validate_never_stops_counting(pipeline: Settings) -> None:
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        db[ALERT_RULES].insert_one({"_id": 42, "metric": "item_interactions", "threshold": 5})
        db[ALERT_RULES].insert_one(
            {"_id": "wide", "metric": "item_interactions", "threshold": 5, "window_minutes": 1440}
        )
        _produce(
            pipeline, pipeline.kafka.topic, [_event(n, int(time.time() * 1000)) for n in range(300)]
        )
        drain_until_caught_up(pipeline)
        figures = reads.totals(db)
        assert figures is not None and figures.events == 300
        assert reads.rule_rejections(db)["rule"].to_list() == ["42", "wide"]


class CrashError(RuntimeError):
    """Stands for the consumer dying in the middle of a batch."""


def test_a_batch_kafka_no_longer_holds_is_named_held_and_resolved(
    pipeline: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topic = pipeline.kafka.topic
    now_ms = int(time.time() * 1000)
    _produce(pipeline, topic, [_event(n, now_ms) for n in range(100)])

    def crash(step: str) -> None:
        if step == "minutes":
            raise CrashError(step)

    with pytest.raises(CrashError), consuming(pipeline, after_step=crash) as consumer:
        drain(consumer, consumer.process, time_budget=60, max_batch_events=50)
    lost = f"{topic}/p0:0-49"
    admin = AdminClient({"bootstrap.servers": pipeline.kafka.bootstrap_servers})  # kept: its
    deleted = admin.delete_records([TopicPartition(topic, 0, 50)])  # futures need it alive
    for future in deleted.values():
        future.result(timeout=30)

    with caplog.at_level(logging.ERROR, logger="pulse.pipeline.consumer"):
        drain_until_caught_up(pipeline)  # p0 is held: nothing of it counts on
    (said,) = [r.getMessage() for r in caplog.records if "cannot be replayed" in r.getMessage()]
    assert lost in said and f"pulse ledger resolve {lost}" in said
    assert "retention: p0 now starts at offset 50" in said
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        entry = db[LEDGER].find_one({"_id": lost})
        assert entry is not None and entry["status"] == "failed"
        assert (db[TOTALS].find_one({}) or {}).get("events", 0) == 0

    result = run_pulse("ledger", "resolve", lost, env=subprocess_env(pipeline))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "recorded as lost" in result.stdout
    drain_until_caught_up(pipeline)
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        figures = reads.totals(db)
        assert figures is not None and figures.events == 50  # offsets 50-99
        assert reads.counter(db, LOST_RECORDS) == 50
        assert (db[LEDGER].find_one({"_id": lost}) or {})["status"] == "lost"


def test_batches_waiting_for_a_flush_kafka_no_longer_holds_are_named_held_and_resolved(
    pipeline: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    topic = pipeline.kafka.topic
    _produce(pipeline, topic, [_event(n, int(time.time() * 1000)) for n in range(100)])
    never = pipeline.consumer.model_copy(update={"entity_flush_seconds": 3_600})
    waiting = pipeline.model_copy(update={"consumer": never})
    with pytest.raises(CrashError), consuming(waiting) as consumer:
        drain(consumer, consumer.process, time_budget=60, max_batch_events=50, hand_over=True)
        raise CrashError("with two batches counted, waiting for their entity flush")
    admin = AdminClient({"bootstrap.servers": pipeline.kafka.bootstrap_servers})
    for future in admin.delete_records([TopicPartition(topic, 0, 50)]).values():
        future.result(timeout=30)

    with caplog.at_level(logging.ERROR, logger="pulse.pipeline.consumer"):
        drain_until_caught_up(pipeline)  # p0 is held, its counts stay as they were
    (said,) = [r.getMessage() for r in caplog.records if "cannot be replayed" in r.getMessage()]
    flush_id = said.split(" ", 1)[0]
    assert flush_id.startswith(f"{topic}/entities/") and f"pulse ledger resolve {flush_id}" in said
    assert "retention: p0 now starts at offset 50" in said
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        assert (db[LEDGER].find_one({"_id": flush_id}) or {})["status"] == "failed"
        figures = reads.totals(db)
        assert figures is not None and figures.events == 100  # counted before the records went
        assert figures.users == 0  # no entity flush wrote them

    result = run_pulse("ledger", "resolve", flush_id, env=subprocess_env(pipeline))
    assert result.returncode == 0, result.stdout + result.stderr
    _produce(pipeline, topic, [_event(n, int(time.time() * 1000)) for n in range(10)])
    drain_until_caught_up(pipeline)  # p0 is read on; the lost batches stay unflushed
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        figures = reads.totals(db)
        assert figures is not None and (figures.events, figures.users) == (110, 10)
        assert (db[LEDGER].find_one({"_id": flush_id}) or {})["status"] == "lost"
