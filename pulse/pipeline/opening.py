"""Open what writing batches needs, once per process or flow run, and close it surely.

Everything with I/O happens here, not in constructors: the start-up check of MongoDB, the
client, the indexes, the alert rules (invalid rules stop the start, rule and field named),
and the optional dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl
from confluent_kafka import Producer
from pymongo.database import Database

from pulse.alerts.engine import Alerting
from pulse.config import Settings
from pulse.ingest.validate import KEY_KEPT_BYTES, ValidationRules, kept
from pulse.kafka.clients import producer as make_producer
from pulse.pipeline.apply import BatchWriter, StepHook
from pulse.pipeline.priority import CountsFirst
from pulse.preflight import check_mongo
from pulse.store import migrations, reads, retention, writes
from pulse.store.client import Document, database, mongo_client
from pulse.store.schema import record_id

DLQ_VALUE_BYTES = 512 * 1_024
"""The largest value sent to the dead-letter topic: under Kafka's default 1 MB message limit."""


def validation_rules(settings: Settings) -> ValidationRules:
    limits = settings.consumer
    return ValidationRules(
        interaction_types=settings.generator.interaction_types,
        max_record_bytes=limits.max_record_bytes,
        max_age_ms=limits.max_event_age_seconds * 1000,
        max_lead_ms=limits.max_event_lead_seconds * 1000,
    )


@dataclass(frozen=True)
class Pipeline:
    """An open database and the writer of one topic's batches into it."""

    settings: Settings
    topic: str
    db: Database[Document]
    writer: BatchWriter


class DeadLetterTopic:
    """Also publishes dead letters to PULSE_KAFKA_DLQ_TOPIC: what the dead letter keeps of
    the record (bounded like it, so always under Kafka's message size), the reason, the
    source record and its whole size and SHA-256 as headers."""

    def __init__(self, settings: Settings, topic: str, dlq_topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.dlq_topic = dlq_topic
        self.keep_bytes = min(settings.consumer.dead_letter_keep_bytes, DLQ_VALUE_BYTES)
        self._producer: Producer | None = None

    def send(self, dead: pl.DataFrame) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings.kafka)
        producer = self._producer
        for row in dead.iter_rows(named=True):
            record = kept(row["value"], row["field"], self.keep_bytes)
            if len(record.value) > DLQ_VALUE_BYTES:  # a field-rejected record is kept whole
                record = kept(row["value"], None, DLQ_VALUE_BYTES)
            source = record_id(self.topic, row["partition"], row["offset"])
            headers: dict[str, str | bytes | None] = {
                "pulse.reason": row["reason"].encode(),
                "pulse.source": source.encode(),
                "pulse.size": str(record.size).encode(),
                "pulse.sha256": record.sha256.encode(),
                "pulse.truncated": b"true" if record.truncated else b"false",
            }
            key = row["key"][:KEY_KEPT_BYTES] if row["key"] is not None else None
            _produce(producer, self.dlq_topic, record.value, key, headers)
        producer.flush(30)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)


def _produce(
    producer: Producer,
    topic: str,
    value: bytes,
    key: bytes | None,
    headers: dict[str, str | bytes | None],
) -> None:
    while True:
        try:
            producer.produce(topic, value, key, headers=headers)
        except BufferError:  # the local queue is full: let deliveries drain, never drop
            producer.poll(1.0)
        else:
            return


@contextmanager
def open_pipeline(
    settings: Settings,
    topic: str | None = None,
    *,
    app_name: str = "pulse-consumer",
    after_step: StepHook | None = None,
) -> Iterator[Pipeline]:
    """The database and batch writer for `topic` (default PULSE_KAFKA_TOPIC)."""
    topic = topic or settings.kafka.topic
    check_mongo(settings.mongo)  # before the alert rules are read from it
    with ExitStack() as stack:
        client = stack.enter_context(mongo_client(settings.mongo, app_name=app_name))
        db = database(client, settings.mongo)
        writes.ensure_indexes(db)
        if reads.totals(db) is None:  # a new database: nothing older than now to prune
            retention.start_marks(db, datetime.now(UTC), settings.retention)
        alerting = Alerting.start(db, settings.alerts, settings.retention.minutes_kept)
        stack.callback(alerting.close)
        sink = None
        if settings.kafka.dlq_topic:
            dlq = DeadLetterTopic(settings, topic, settings.kafka.dlq_topic)
            stack.callback(dlq.close)
            sink = dlq.send
        buckets = writes.settle_user_buckets(db, settings.mongo.user_buckets)
        item_buckets = writes.settle_item_buckets(db, settings.mongo.item_buckets)
        migrations.upgrade(db, buckets, item_buckets)
        writer = BatchWriter(
            db,
            topic,
            validation_rules(settings),
            sink,
            alerting,
            after_step=after_step,
            user_buckets=buckets,
            item_buckets=item_buckets,
            dead_letter_bytes=settings.consumer.dead_letter_keep_bytes,
            minute_detail=settings.retention.minutes_kept,
            # Flushes then run in the background, beside the counts (pulse/pipeline/consumer.py).
            priority=CountsFirst() if settings.consumer.entity_flush_seconds > 0 else None,
            session_idle=settings.sessions.idle,
        )
        yield Pipeline(settings=settings, topic=topic, db=db, writer=writer)
