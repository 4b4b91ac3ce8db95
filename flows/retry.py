"""Flow `retry-failed-batches`: re-apply unfinished ledger entries over their exact offsets."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.policies import RETRY_DELAYS, notify_failure, transient_failure
from pulse.config import load_settings
from pulse.pipeline.apply import BatchReport
from pulse.pipeline.consumer import AggregatingConsumer
from pulse.store import writes


@task(
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
    cache_policy=NO_CACHE,
)
def replay_batch(consumer: AggregatingConsumer, entry: dict[str, Any]) -> BatchReport:
    """Re-read and re-apply one ledger entry; documents that hold it already are left alone."""
    return consumer.replay(entry)


@flow(name="retry-failed-batches", on_failure=[notify_failure], on_crashed=[notify_failure])
def retry_failed_batches(topic: str | None = None) -> dict[str, Any]:
    """Re-process every failed or interrupted micro-batch of the topic, idempotently."""
    logger = get_run_logger()
    settings = load_settings()
    with AggregatingConsumer(settings, topic=topic, join_group=False) as consumer:
        entries = writes.unfinished_batches(consumer.db, consumer.topic)
        logger.info("%d unfinished batches of %s", len(entries), consumer.topic)
        reports = [
            replay_batch.with_options(task_run_name=entry["_id"].split("/", 1)[1])(consumer, entry)
            for entry in entries
        ]
    return {
        "replayed": [report.batch_id for report in reports],
        "documents_written": sum(report.docs_written for report in reports),
        "already_applied": sum(report.already_applied for report in reports),
    }
