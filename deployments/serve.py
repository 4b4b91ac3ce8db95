"""Serve Pulse's deployments from this process: `python -m deployments.serve` (or `make run`).

- generate-interactions/stream   streams without a gap: each run owns one 60 s window
- generate-interactions/manual   no schedule, no limit: `pulse trigger generate --events 100000`
- aggregate-interactions/drain   drains without a gap: each run owns one 120 s window, then
                                 hands its partitions to the next run (one consumer group)
- retry-failed-batches/manual    no schedule: run it from the UI or `pulse trigger retry`
- replay-dead-letters/manual     no schedule: `pulse trigger replay-dead-letters --reason ...`

Scheduled runs size themselves from their scheduled start (pulse/pipeline/windows.py): a run starts
early, waits for its window and ends when the next run's window begins, so no run is
cancelled for overlapping the next. Schedules and parameters can be edited in the Prefect UI;
the values below are the defaults. Pausing a schedule lets the current run finish its window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from prefect import serve
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterId,
    FlowRunFilter,
    FlowRunFilterState,
    FlowRunFilterStateType,
)
from prefect.client.schemas.objects import (
    ConcurrencyLimitConfig,
    ConcurrencyLimitStrategy,
    StateType,
)
from prefect.deployments.runner import RunnerDeployment
from prefect.exceptions import ObjectNotFound
from prefect.logging import get_logger
from prefect.schedules import Interval, Schedule
from prefect.states import Crashed

from deployments.prefect_api import prefect_api
from flows.aggregate import aggregate_interactions
from flows.generate import generate_interactions
from flows.replay import replay_dead_letters
from flows.retry import retry_failed_batches
from pulse.config import Settings, load_settings

GENERATOR_EVERY = timedelta(seconds=60)
CONSUMER_EVERY = timedelta(seconds=120)
FIRST_RUN_IN = timedelta(seconds=5)
RUNNER_POLL_SECONDS = 2.0  # how soon a due run starts; Prefect's default is 10 s


def _at_most(runs: int) -> ConcurrencyLimitConfig:
    # A run due while `runs` runs are live is cancelled, not queued: after an outage the late
    # runs do not pile up and then run back to back. Scheduled deployments allow 2: a run in
    # its window and its successor waiting for the next one (pulse/pipeline/windows.py).
    return ConcurrencyLimitConfig(
        limit=runs, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )


def _every(interval: timedelta) -> Schedule:
    # Anchored just ahead of now: the first run is due in seconds, not one interval later, so
    # figures appear within half a minute of `make run`.
    return Interval(interval, anchor_date=datetime.now(UTC) + FIRST_RUN_IN)


def _built(deployment: object) -> RunnerDeployment:
    # to_deployment() is typed sync-or-async; called outside an event loop it is sync.
    if not isinstance(deployment, RunnerDeployment):
        raise TypeError("to_deployment() must be called outside an event loop")
    return deployment


def deployments(settings: Settings, paused: bool = False) -> list[RunnerDeployment]:
    """The deployments, with parameters defaulting to the settings."""
    generator = settings.generator
    consumer = settings.consumer
    return [
        _built(
            generate_interactions.to_deployment(
                name="stream",
                schedules=[_every(GENERATOR_EVERY)],
                paused=paused,
                concurrency_limit=_at_most(2),
                parameters={
                    "batch_size": generator.batch_size,
                    "interval_seconds": generator.interval_seconds,
                    "speed_multiplier": generator.speed_multiplier,
                    "window_seconds": GENERATOR_EVERY.total_seconds(),
                    "users": generator.users,
                    "items": generator.items,
                    "malformed_fraction": generator.malformed_fraction,
                    "hot_item": generator.hot_item,
                    "hot_share": generator.hot_share,
                    "hot_cycle_minutes": generator.hot_cycle_minutes,
                },
                tags=["pulse", "generator"],
                description="Simulated user interactions, produced to Kafka in paced bursts.",
            )
        ),
        _built(
            generate_interactions.to_deployment(
                name="manual",
                parameters={"batch_size": generator.batch_size, "users": generator.users},
                tags=["pulse", "generator"],
                description="Ad-hoc bursts; runs alongside the scheduled stream.",
            )
        ),
        _built(
            aggregate_interactions.to_deployment(
                name="drain",
                schedules=[_every(CONSUMER_EVERY)],
                paused=paused,
                concurrency_limit=_at_most(2),
                parameters={
                    "window_seconds": CONSUMER_EVERY.total_seconds(),
                    "max_batch_events": consumer.max_batch_events,
                    "max_batch_wait_seconds": consumer.max_batch_wait_seconds,
                },
                tags=["pulse", "consumer"],
                description="Micro-batches from Kafka aggregated into MongoDB, exactly once.",
            )
        ),
        _built(
            retry_failed_batches.to_deployment(
                name="manual",
                concurrency_limit=_at_most(1),
                tags=["pulse", "recovery"],
                description="Re-apply failed or interrupted micro-batches over their offsets.",
            )
        ),
        _built(
            replay_dead_letters.to_deployment(
                name="manual",
                concurrency_limit=_at_most(1),
                tags=["pulse", "recovery"],
                description="Re-ingest selected (fixed) dead letters exactly once.",
            )
        ),
    ]


def release_stale_runs(names: list[str]) -> int:
    """Mark runs of these deployments still 'Running' or 'Pending' as crashed, and drop the
    runs their previous schedule had queued.

    This process is the only runner of its deployments; a run it did not start was left
    behind by a runner that died (killed, machine restarted) and would hold the deployment's
    concurrency slot for up to 5 minutes, until its lease expired.
    """
    running = FlowRunFilterStateType(any_=[StateType.RUNNING, StateType.PENDING])
    scheduled = FlowRunFilterStateType(any_=[StateType.SCHEDULED])
    released = 0
    with get_client(sync_client=True) as client:
        for name in names:
            try:
                deployment = client.read_deployment_by_name(name)
            except ObjectNotFound:
                continue
            only_this = DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            runs = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=running)),
                deployment_filter=only_this,
            )
            for run in runs:
                client.set_flow_run_state(run.id, Crashed(message="its runner process is gone"))
                released += 1
            # Runs due on the previous runner's schedule: this runner anchors a new one, and
            # both would stream at once (pulse/pipeline/windows.py relies on one schedule).
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=scheduled)),
                deployment_filter=only_this,
            ):
                if run.auto_scheduled:
                    client.delete_flow_run(run.id)
    return released


def main(
    paused: Annotated[
        bool, typer.Option(help="Register the schedules paused (resume them in the Prefect UI).")
    ] = False,
) -> None:
    """Serve the deployments until SIGTERM or Ctrl-C."""
    settings = load_settings()
    with prefect_api(settings):
        served = deployments(settings, paused=paused)
        stale = release_stale_runs([f"{d.flow_name}/{d.name}" for d in served])
        if stale:
            get_logger("pulse.serve").warning(
                "marked %d runs of a previous runner as crashed", stale
            )
        serve(
            *served,
            pause_on_shutdown=False,  # schedules keep their state for the next start
            query_seconds=RUNNER_POLL_SECONDS,
        )


if __name__ == "__main__":
    typer.run(main)
