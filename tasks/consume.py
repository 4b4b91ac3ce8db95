"""Tasks of the consumer flows: apply one polled batch, replay one unfinished batch."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pulse.config import load_settings
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.consumer import replay_entry
from pulse.store import writes
from pulse.store.client import database, mongo_client
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


@task(cache_policy=NO_CACHE)
def resolve_lost_entry(entry_id: str) -> dict[str, Any]:
    """Record an unfinished ledger entry's records as lost; its partitions count on after it."""
    settings = load_settings()
    with mongo_client(settings.mongo) as client:
        entry = writes.resolve_lost(database(client, settings.mongo), entry_id, by="Prefect")
    get_run_logger().warning("%s recorded as lost (%s records)", entry_id, entry.get("records"))
    return {
        "entry": entry_id,
        "kind": entry.get("kind") or "batch",
        "records": entry.get("records"),
    }
