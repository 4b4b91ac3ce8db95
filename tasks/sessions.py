"""What a flow run opened (a consumer-group member, a database), found by its tasks by id.

A flow opens a session for its run; its tasks take the session's id and a batch id, and look
both up here. A polled batch waits here until its task applied it, so a task retry applies
the very same records.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pulse.config import Settings
from pulse.ingest.batch import MicroBatch
from pulse.pipeline.consumer import AggregatingConsumer, consuming
from pulse.pipeline.session import Pipeline, open_pipeline


@dataclass
class Session:
    pipeline: Pipeline
    consumer: AggregatingConsumer | None = None
    pending: dict[str, MicroBatch] = field(default_factory=dict)

    def hold(self, batch: MicroBatch) -> str:
        """Keep the batch until it is applied; returns its id."""
        self.pending[batch.batch_id] = batch
        return batch.batch_id

    def member(self) -> AggregatingConsumer:
        if self.consumer is None:
            raise RuntimeError("this session has not joined the consumer group")
        return self.consumer


_open: dict[str, Session] = {}


def session(session_id: str) -> Session:
    try:
        return _open[session_id]
    except KeyError:
        raise RuntimeError(f"no open session {session_id} in this process") from None


@contextmanager
def _registered(opened: Session) -> Iterator[tuple[str, Session]]:
    session_id = uuid.uuid4().hex
    _open[session_id] = opened
    try:
        yield session_id, opened
    finally:
        del _open[session_id]


@contextmanager
def consumer_session(settings: Settings, topic: str | None) -> Iterator[tuple[str, Session]]:
    """Join the consumer group for this flow run (left on exit)."""
    with (
        consuming(settings, topic=topic) as consumer,
        _registered(Session(consumer.pipeline, consumer)) as opened,
    ):
        yield opened


@contextmanager
def pipeline_session(settings: Settings, topic: str | None) -> Iterator[tuple[str, Session]]:
    """The database and batch writer, without joining the group (recovery flows)."""
    with open_pipeline(settings, topic) as pipeline, _registered(Session(pipeline)) as opened:
        yield opened
