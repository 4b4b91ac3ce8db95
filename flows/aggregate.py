"""Flow `aggregate-interactions`: drain micro-batches from Kafka into MongoDB aggregates."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.policies import (
    DRAIN_TIMEOUT_SECONDS,
    FLUSH_QUIET_SECONDS,
    HANDOVER_SECONDS,
    JOIN_AHEAD_SECONDS,
    MAX_DRAIN_BUDGET_SECONDS,
    drain_budget,
    run_name,
    wait_for_window,
)
from pulse.config import load_settings
from pulse.pipeline.drain import drain, summary_markdown
from pulse.pipeline.run_registry import open_member
from tasks.consume import batch_applier


@flow(
    name="aggregate-interactions",
    flow_run_name=run_name,
    timeout_seconds=DRAIN_TIMEOUT_SECONDS,
)
def aggregate_interactions(
    time_budget_seconds: Annotated[float, Field(gt=0, le=MAX_DRAIN_BUDGET_SECONDS)] | None = None,
    max_batch_events: Annotated[int, Field(ge=1)] | None = None,
    max_batch_wait_seconds: Annotated[float, Field(gt=0)] | None = None,
    stop_when_caught_up: bool = True,
    topic: str | None = None,
    retry_delays: list[float] | None = None,
    window_seconds: Annotated[float, Field(gt=0)] | None = None,
    handover_seconds: Annotated[float, Field(ge=0)] = HANDOVER_SECONDS,
) -> dict[str, Any]:
    """Drain the topic until caught up or the time budget is spent; unset values from settings.

    With `window_seconds` (the schedule's interval) the run joins the consumer group just before
    its window of the schedule starts and leaves when it ends, handing its partitions to its
    successor, so some consumer is always draining (pulse/pipeline/schedule_windows.py).
    """
    logger = get_run_logger()
    settings = load_settings()
    budget = drain_budget(time_budget_seconds, settings.consumer.time_budget_seconds)
    window = None
    if window_seconds is not None:
        # Joining a little early lets the group move partitions over while the previous run
        # still drains the others (cooperative rebalancing), instead of all at its last batch.
        window, budget = wait_for_window(window_seconds, handover_seconds, JOIN_AHEAD_SECONDS)
        stop_when_caught_up = False
        logger.info("draining in window %s-%s", window.start.time(), window.end.time())
    with open_member(settings, topic) as (opened_id, opened):
        member = opened.member()
        summary = drain(
            member,
            batch_applier(opened_id, retry_delays),
            time_budget=budget,
            max_batch_events=max_batch_events,
            max_batch_wait=max_batch_wait_seconds,
            stop_when_caught_up=stop_when_caught_up,
            hand_over=window is not None,  # its successor joined ahead: it takes what waits
            quiet_seconds=FLUSH_QUIET_SECONDS,
        )
        for replayed in summary.replayed:
            logger.info("wrote what an earlier run left unfinished: %s", replayed)
    create_markdown_artifact(
        markdown=summary_markdown(summary, member.topic),
        key="consumer-run",
        description=f"Consumer run on {member.topic}",
    )
    create_table_artifact(
        table=summary.batch_rows,
        key="consumer-batches",
        description=f"Micro-batches of {member.topic} this run applied, by offset range",
    )
    logger.info(
        "%d batches, %d records (%d dead-lettered) in %.1f s; lag at end %s",
        summary.batches,
        summary.records,
        summary.dead_lettered,
        summary.seconds,
        summary.lag,
    )
    return summary.to_dict() | ({"window": window.as_dict()} if window else {})
