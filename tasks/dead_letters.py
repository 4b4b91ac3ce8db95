"""Task of the dead-letter replay flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from pulse.config import load_settings
from pulse.pipeline import dead_letter_replay
from pulse.pipeline.dead_letter_replay import ReplayReport
from pulse.pipeline.opening import open_pipeline


# A write: NO_CACHE. Safe to run again: an interrupted replay is finished, not repeated.
@task(cache_policy=NO_CACHE)
def replay_dead_letters_task(
    reason_contains: str | None,
    field: str | None,
    ids: list[str] | None,
    limit: int,
    topic: str | None,
) -> ReplayReport:
    """Validate the selected dead letters again; apply those now valid, keep the rest dead."""
    with open_pipeline(load_settings(), topic) as pipeline:
        return dead_letter_replay.replay(
            pipeline.writer, reason_contains=reason_contains, field_name=field, ids=ids, limit=limit
        )
