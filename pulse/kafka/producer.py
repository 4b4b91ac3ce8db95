"""Produce wire records to Kafka: never drop on a full queue, count every delivery outcome."""

from __future__ import annotations

import logging
from collections import Counter
from types import TracebackType
from typing import Self

from confluent_kafka import KafkaError, Message, Producer

from pulse.config import KafkaSettings
from pulse.kafka.clients import producer as make_producer

log = logging.getLogger(__name__)


class InteractionProducer:
    """An idempotent producer for one topic, created lazily and flushed on exit.

    Delivery reports are requested for failures only (`delivery.report.only.error`), so the
    hot path makes no Python callback per message: delivered = produced - failed - in flight.
    """

    def __init__(self, kafka: KafkaSettings, topic: str | None = None, **overrides: object) -> None:
        self.kafka = kafka
        self.topic = topic or kafka.topic
        self._overrides = overrides
        self.produced = 0
        self.failed = 0
        self.buffer_full_waits = 0
        self.errors: Counter[str] = Counter()
        self._producer: Producer | None = None

    @property
    def client(self) -> Producer:
        if self._producer is None:
            self._producer = make_producer(
                self.kafka,
                on_delivery=self._on_failure,
                **{"delivery.report.only.error": True, **self._overrides},
            )
        return self._producer

    def _on_failure(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.failed += 1
            self.errors[error.name()] += 1
            if self.failed == 1:
                log.error("delivery to %s failed: %s", message.topic(), error.str())

    def send(self, keys: list[bytes], payloads: list[bytes]) -> None:
        """Queue records for delivery; when the local queue is full, wait for room (no drops)."""
        client = self.client
        produce, poll, topic = client.produce, client.poll, self.topic
        for key, value in zip(keys, payloads, strict=True):
            while True:
                try:
                    produce(topic, value, key)
                    break
                except BufferError:
                    self.buffer_full_waits += 1
                    poll(0.05)  # serve delivery reports so the queue drains
        self.produced += len(payloads)
        poll(0)

    @property
    def in_flight(self) -> int:
        return len(self._producer) if self._producer is not None else 0

    @property
    def delivered(self) -> int:
        return self.produced - self.failed - self.in_flight

    def flush(self, timeout: float = 60.0) -> int:
        """Wait for outstanding deliveries; returns how many are still undelivered."""
        if self._producer is None:
            return 0
        return self._producer.flush(timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        remaining = self.flush()
        if remaining:
            log.error("%d records were still undelivered after the final flush", remaining)
