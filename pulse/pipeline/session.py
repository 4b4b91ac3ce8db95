"""Open what writing batches needs, once per process or flow run, and close it surely.

Everything with I/O happens here, not in constructors: the start-up check of MongoDB, the
client, the indexes, the alert rules (invalid rules stop the start, rule and field named),
and the optional dead-letter topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass

import polars as pl
from confluent_kafka import Producer
from pymongo.database import Database

from pulse.alerts.engine import Alerting
from pulse.config import Settings
from pulse.ingest.validate import ValidationRules
from pulse.kafka.clients import producer as make_producer
from pulse.pipeline.apply import BatchWriter, StepHook
from pulse.preflight import check_mongo
from pulse.store import writes
from pulse.store.client import Document, database, mongo_client
from pulse.store.schema import record_id


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
    """Also publishes dead letters to PULSE_KAFKA_DLQ_TOPIC (raw value, reason header)."""

    def __init__(self, settings: Settings, topic: str, dlq_topic: str) -> None:
        self.settings = settings
        self.topic = topic
        self.dlq_topic = dlq_topic
        self._producer: Producer | None = None

    def send(self, dead: pl.DataFrame) -> None:
        if self._producer is None:
            self._producer = make_producer(self.settings.kafka)
        for row in dead.iter_rows(named=True):
            source = record_id(self.topic, row["partition"], row["offset"])
            self._producer.produce(
                self.dlq_topic,
                row["value"],
                row["key"],
                headers={"pulse.reason": row["reason"].encode(), "pulse.source": source.encode()},
            )
        self._producer.flush(30)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)


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
        alerting = Alerting.start(db, settings.alerts)
        stack.callback(alerting.close)
        sink = None
        if settings.kafka.dlq_topic:
            dlq = DeadLetterTopic(settings, topic, settings.kafka.dlq_topic)
            stack.callback(dlq.close)
            sink = dlq.send
        buckets = writes.settle_user_buckets(db, settings.mongo.user_buckets)
        writes.move_legacy_users(db, buckets)
        writer = BatchWriter(
            db,
            topic,
            validation_rules(settings),
            sink,
            alerting,
            after_step=after_step,
            user_buckets=buckets,
        )
        yield Pipeline(settings=settings, topic=topic, db=db, writer=writer)
