"""Flow `retry-failed-batches`: re-apply unfinished ledger entries over their exact offsets."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.policies import RECOVERY_TIMEOUT_SECONDS, run_name
from pulse.config import load_settings
from pulse.ingest.batch import without_topic
from pulse.pipeline.drain import batch_row
from pulse.pipeline.run_registry import open_writer
from tasks.consume import replay_batch, unfinished_batches


@flow(
    name="retry-failed-batches",
    flow_run_name=run_name,
    timeout_seconds=RECOVERY_TIMEOUT_SECONDS,
)
def retry_failed_batches(topic: str | None = None) -> dict[str, Any]:
    """Re-process every failed or interrupted micro-batch of the topic, idempotently."""
    logger = get_run_logger()
    settings = load_settings()
    group = settings.kafka.consumer_group
    with open_writer(settings, topic) as (opened_id, opened):
        entries = unfinished_batches(opened_id)
        logger.info("%d unfinished batches of %s", len(entries), opened.pipeline.topic)
        reports = [
            replay_batch.with_options(task_run_name=without_topic(entry["_id"]))(
                opened_id, entry, group
            )
            for entry in entries
        ]
    create_table_artifact(
        table=[batch_row(report) for report in reports],
        key="retried-batches",
        description=f"Unfinished micro-batches of {opened.pipeline.topic} applied again "
        "(none: nothing was unfinished)",
    )
    return {
        "replayed": [report.batch_id for report in reports],
        "documents_written": sum(report.docs_written for report in reports),
        "already_applied": sum(report.already_applied for report in reports),
    }
