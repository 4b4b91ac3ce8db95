"""Tasks of the consumer flows: apply one polled batch, replay one unfinished batch."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pulse.config import load_settings
from pulse.ingest.batch import MicroBatch, without_topic
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.consumer import replay_entry
from pulse.pipeline.drain import ApplyBatch
from pulse.pipeline.run_registry import opened
from pulse.store import writes
from pulse.store.client import database, mongo_client
from tasks.retries import RETRY_DELAYS, transient_failure

# Writes are never replaced by a cached result: NO_CACHE. Retrying them is safe (every
# statement is guarded by the batch's offsets, docs/consumer.md).


@task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def apply_batch(opened_id: str, batch_id: str, consume_seconds: float) -> BatchReport:
    """Validate, aggregate and write one polled micro-batch, then commit its offsets."""
    resources = opened(opened_id)
    report = resources.member().process(resources.pending[batch_id], consume_seconds)
    del resources.pending[batch_id]
    get_run_logger().info(
        "batch %s: %d records, %d valid, %d dead-lettered, %d documents written",
        report.batch_id,
        report.records,
        report.valid,
        report.dead_lettered,
        report.docs_written,
    )
    return report


def batch_applier(opened_id: str, retry_delays: list[float] | None = None) -> ApplyBatch:
    """What a drain calls for each polled batch: `apply_batch` as a task run named after the
    batch's offset ranges, retried after `retry_delays` (default RETRY_DELAYS)."""
    delays = RETRY_DELAYS if retry_delays is None else retry_delays
    resources = opened(opened_id)

    def run_task(batch: MicroBatch, consume_seconds: float) -> BatchReport:
        options = apply_batch.with_options(
            task_run_name=without_topic(batch.batch_id),
            retries=len(delays),
            retry_delay_seconds=delays,
        )
        return options(opened_id, resources.hold(batch), consume_seconds)

    return run_task


@task(cache_policy=NO_CACHE)
def unfinished_batches(opened_id: str) -> list[dict[str, Any]]:
    """Ledger entries of the flow run.s topic that are not applied yet: batches first, then
    entity flushes (a flush's batches are applied before it)."""
    pipeline = opened(opened_id).pipeline
    return writes.unfinished_batches(pipeline.db, pipeline.topic)


@task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def replay_batch(opened_id: str, entry: dict[str, Any], group: str) -> BatchReport:
    """Re-read and re-apply one ledger entry; documents that hold it already are left alone."""
    return replay_entry(opened(opened_id).pipeline, entry, group)


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
