"""What a flow run opened (a consumer-group member, a database), found by its tasks by id.

A flow opens its resources for the run; its tasks take their id (Prefect shows and hashes
task inputs, so tasks get ids, not clients) and a batch id, and look both up here. A polled
batch waits here until its task applied it, so a task retry applies the very same records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pulse.config import Settings
from pulse.ingest.batch import MicroBatch
from pulse.pipeline.consumer import AggregatingConsumer, consuming
from pulse.pipeline.opening import Pipeline, open_pipeline


@dataclass
class Opened:
    """One flow run's open pipeline, its group member if it joined, and its polled batches."""

    pipeline: Pipeline
    consumer: AggregatingConsumer | None = None
    pending: dict[str, MicroBatch] = field(default_factory=dict)

    def hold(self, batch: MicroBatch) -> str:
        """Keep the batch until it is applied; returns its id."""
        self.pending[batch.batch_id] = batch
        return batch.batch_id

    def member(self) -> AggregatingConsumer:
        if self.consumer is None:
            raise RuntimeError("this flow run has not joined the consumer group")
        return self.consumer


_open: dict[str, Opened] = {}


def opened(opened_id: str) -> Opened:
    try:
        return _open[opened_id]
    except KeyError:
        raise RuntimeError(f"nothing open as {opened_id} in this process") from None


@contextmanager
def _registered(resources: Opened) -> Iterator[tuple[str, Opened]]:
    opened_id = uuid.uuid4().hex
    _open[opened_id] = resources
    try:
        yield opened_id, resources
    finally:
        del _open[opened_id]


@contextmanager
def open_member(settings: Settings, topic: str | None) -> Iterator[tuple[str, Opened]]:
    """Join the consumer group for this flow run (left on exit)."""
    with (
        consuming(settings, topic=topic) as consumer,
        _registered(Opened(consumer.pipeline, consumer)) as registered,
    ):
        yield registered


@contextmanager
def open_writer(settings: Settings, topic: str | None) -> Iterator[tuple[str, Opened]]:
    """The database and batch writer, without joining the group (recovery flows)."""
    with open_pipeline(settings, topic) as pipeline, _registered(Opened(pipeline)) as registered:
        yield registered
