"""Flow `resolve-lost-batch`: record a ledger entry Kafka can no longer replay as lost."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.policies import RECOVERY_TIMEOUT_SECONDS, run_name
from tasks.consume import resolve_lost_entry


@flow(name="resolve-lost-batch", flow_run_name=run_name, timeout_seconds=RECOVERY_TIMEOUT_SECONDS)
def resolve_lost_batch(entry_id: str) -> dict[str, Any]:
    """Record the entry's records as lost, so that its partitions count on after it (the same
    as `pulse ledger resolve <entry_id>`)."""
    return resolve_lost_entry(entry_id)
