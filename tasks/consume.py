"""Tasks of the consumer flows: apply one polled batch, replay one unfinished batch."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pulse.pipeline.apply import BatchReport
from pulse.pipeline.consumer import replay_entry
from pulse.store import writes
from tasks.retries import RETRY_DELAYS, transient_failure
from tasks.sessions import session

# Writes are never replaced by a cached result: NO_CACHE. Retrying them is safe (every
# statement is guarded by the batch's offsets, docs/consumer.md).


@task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def apply_batch(session_id: str, batch_id: str, consume_seconds: float) -> BatchReport:
    """Validate, aggregate and write one polled micro-batch, then commit its offsets."""
    opened = session(session_id)
    report = opened.member().process(opened.pending[batch_id], consume_seconds)
    del opened.pending[batch_id]
    get_run_logger().info(
        "batch %s: %d records, %d valid, %d dead-lettered, %d documents written",
        report.batch_id,
        report.records,
        report.valid,
        report.dead_lettered,
        report.docs_written,
    )
    return report


@task(cache_policy=NO_CACHE)
def unfinished_batches(session_id: str) -> list[dict[str, Any]]:
    """Ledger entries of the session's topic that are not applied yet: batches first, then
    entity flushes (a flush's batches are applied before it)."""
    pipeline = session(session_id).pipeline
    return writes.unfinished_batches(pipeline.db, pipeline.topic)


@task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def replay_batch(session_id: str, entry: dict[str, Any], group: str) -> BatchReport:
    """Re-read and re-apply one ledger entry; documents that hold it already are left alone."""
    return replay_entry(session(session_id).pipeline, entry, group)
