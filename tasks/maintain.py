"""Task of the maintenance flow."""

from __future__ import annotations

from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from pulse.config import load_settings
from pulse.store import retention
from pulse.store.client import database, mongo_client
from tasks.retries import RETRY_DELAYS, transient_failure


# Safe to retry and to rerun: a pass removes what is left past retention, never more.
@task(
    cache_policy=NO_CACHE,
    retries=len(RETRY_DELAYS),
    retry_delay_seconds=RETRY_DELAYS,
    retry_condition_fn=transient_failure,
)
def retention_pass() -> list[dict[str, str | int]]:
    """One `pulse maintain` pass; a row per collection."""
    settings = load_settings()
    now = datetime.now(UTC)
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        passes = retention.maintain(db, settings.retention, now)
    return [pruned.row() for pruned in passes]
