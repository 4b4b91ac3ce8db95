"""Flow `maintain-store`: prune what is past its retention (`pulse maintain`)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.policies import MAINTAIN_TIMEOUT_SECONDS, run_name
from tasks.maintain import retention_pass


@flow(name="maintain-store", flow_run_name=run_name, timeout_seconds=MAINTAIN_TIMEOUT_SECONDS)
def maintain_store() -> list[dict[str, Any]]:
    """Remove finished ledger entries, dead letters, alerts and per-minute detail past their
    retention (PULSE_RETENTION_*); what it removed is the run's table artifact."""
    rows = retention_pass()
    removed = sum(int(row["removed"]) for row in rows)
    get_run_logger().info("retention pass: %d documents removed", removed)
    create_table_artifact(
        table=rows,
        key="retention-pass",
        description="What the retention pass removed, per collection",
    )
    return rows
