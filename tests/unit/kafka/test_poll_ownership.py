"""A poll drops what it gathered of a partition revoked meanwhile (pulse/kafka/source.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from confluent_kafka import Consumer

from pulse.kafka.source import Closing, Revocations, poll_batch


@dataclass
class _Message:
    _partition: int
    _offset: int

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_795_737_600_000)

    def key(self) -> bytes:
        return b"k"

    def value(self) -> bytes:
        return b"{}"


@dataclass
class _ScriptedConsumer:
    """consume() hands out chunks in order; a chunk's callback runs inside its call, as a
    rebalance callback runs inside librdkafka's consume."""

    chunks: list[tuple[list[_Message], Callable[[], None] | None]]
    calls: int = field(default=0)

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[_Message]:
        self.calls += 1
        if not self.chunks:
            return []
        messages, during = self.chunks.pop(0)
        if during is not None:
            during()
        return messages


def _poll(consumer: _ScriptedConsumer, revocations: Revocations) -> Any:
    closing = Closing(limit=1_000, wait=5.0, linger=0.01, age=5.0)
    return poll_batch(cast(Consumer, consumer), "t", closing, revocations)


def test_records_of_a_partition_revoked_during_the_poll_are_dropped() -> None:
    revocations = Revocations()
    consumer = _ScriptedConsumer(
        [
            ([_Message(0, 10), _Message(1, 20)], None),
            ([_Message(0, 11)], lambda: revocations.revoked([1])),  # p1 taken away here
            ([_Message(0, 12)], None),
        ]
    )
    polled = _poll(consumer, revocations)
    assert polled.batch is not None
    assert polled.batch.records.select("partition", "offset").rows() == [(0, 10), (0, 11), (0, 12)]
    assert polled.dropped == {1}


def test_a_revocation_before_the_poll_drops_nothing() -> None:
    revocations = Revocations()
    revocations.revoked([1])
    consumer = _ScriptedConsumer([([_Message(0, 10), _Message(1, 20)], None)])
    polled = _poll(consumer, revocations)
    assert polled.batch is not None and polled.batch.size == 2
    assert polled.dropped == set()


def test_a_revocation_of_a_partition_the_batch_does_not_hold_drops_nothing() -> None:
    revocations = Revocations()
    consumer = _ScriptedConsumer(
        [([_Message(0, 10)], None), ([_Message(0, 11)], lambda: revocations.revoked([5]))]
    )
    polled = _poll(consumer, revocations)
    assert polled.batch is not None and polled.batch.size == 2
    assert polled.dropped == set()
