"""Flow `replay-dead-letters`: re-ingest selected (fixed) dead letters exactly once."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import Field

from flows.policies import RECOVERY_TIMEOUT_SECONDS, run_name
from tasks.dead_letters import replay_dead_letters_task


@flow(
    name="replay-dead-letters",
    flow_run_name=run_name,
    timeout_seconds=RECOVERY_TIMEOUT_SECONDS,
)
def replay_dead_letters(
    reason_contains: str | None = None,
    field: str | None = None,
    ids: list[str] | None = None,
    limit: Annotated[int, Field(ge=1, le=100_000)] = 1_000,
    topic: str | None = None,
) -> dict[str, Any]:
    """Validate the selected dead letters again; apply those now valid, keep the rest dead."""
    logger = get_run_logger()
    report = replay_dead_letters_task(reason_contains, field, ids, limit, topic)
    logger.info(
        "%d dead letters selected: %d revived, %d still invalid",
        report.selected,
        report.revived,
        report.still_dead,
    )
    create_table_artifact(
        table=[report.to_dict() | {"batches": ", ".join(report.batches) or "none"}],
        key="replayed-dead-letters",
        description="Dead letters validated again: revived ones were counted exactly once",
    )
    return report.to_dict()
