"""Serve Pulse's deployments from this process: `python -m deployments.serve` (or `make run`),
and Prometheus' /metrics next to them (PULSE_METRICS_PORT).

The deployments are defined in deployments/definitions.py (shared with prefect.yaml).
Schedules and parameters can be edited in the Prefect UI; pausing a schedule lets the current
run finish its window.
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
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
from prefect.exceptions import ObjectNotFound, TerminationSignal
from prefect.logging import get_logger
from prefect.runner import Runner
from prefect.schedules import Interval, Schedule
from prefect.states import Crashed

from deployments.automations import HEARTBEAT_SECONDS, ensure_automations
from deployments.definitions import Definition, definitions
from deployments.prefect_api import prefect_api
from pulse.config import Settings, load_settings
from pulse.metrics.server import MetricsPortError, serve_metrics

FIRST_RUN_IN = timedelta(seconds=5)
RUNNER_POLL_SECONDS = 2.0  # how soon a due run starts; Prefect's default is 10 s


def _at_most(runs: int) -> ConcurrencyLimitConfig:
    # A run due while `runs` runs are live is cancelled, not queued (definitions.py says why).
    return ConcurrencyLimitConfig(
        limit=runs, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )


def _every(interval: timedelta) -> Schedule:
    # Anchored just ahead of now: the first run is due in seconds, not one interval later, so
    # figures appear within half a minute of `make run`.
    return Interval(interval, anchor_date=datetime.now(UTC) + FIRST_RUN_IN)


def _runner_deployment(definition: Definition, paused: bool) -> RunnerDeployment:
    deployment = definition.flow.to_deployment(
        name=definition.name,
        schedules=[_every(definition.every)] if definition.every else None,
        paused=paused if definition.every else None,
        concurrency_limit=_at_most(definition.limit) if definition.limit else None,
        parameters=definition.parameters,
        tags=list(definition.tags),
        description=definition.description,
    )
    # to_deployment() is typed sync-or-async; called outside an event loop it is sync.
    if not isinstance(deployment, RunnerDeployment):
        raise TypeError("to_deployment() must be called outside an event loop")
    return deployment


def deployments(settings: Settings, paused: bool = False) -> list[RunnerDeployment]:
    """The deployments of definitions.py, the stream's parameters from the settings."""
    return [
        _runner_deployment(d, paused) for d in definitions(settings.generator, settings.retention)
    ]


def release_stale_runs(names: list[str]) -> int:
    """Mark runs of these deployments still 'Running' or 'Pending' as crashed, and drop the
    runs their previous schedule had queued.

    This process is the only runner of its deployments; a run it did not start was left
    behind by a runner that died (killed, machine restarted). The "crash unresponsive runs"
    automation (deployments/automations.py) marks such runs 90 s after their last heartbeat,
    whether or not a runner comes back; this catches a restart within those 90 s, which would
    otherwise find both concurrency slots held and cancel its first runs.
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
    try:
        serve_metrics(settings)
    except MetricsPortError as exc:
        raise SystemExit(f"error: {exc}") from None
    # Runs started here send heartbeats; the "crash unresponsive runs" automation relies on them.
    os.environ.setdefault("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", str(HEARTBEAT_SECONDS))
    with prefect_api(settings):
        served = deployments(settings, paused=paused)
        logger = get_logger("pulse.serve")
        stale = release_stale_runs([f"{d.flow_name}/{d.name}" for d in served])
        if stale:
            logger.warning("marked %d runs of a previous runner as crashed", stale)
        runner = Runner(
            pause_on_shutdown=False,  # schedules keep their state for the next start
            query_seconds=RUNNER_POLL_SECONDS,
            limit=None,
        )
        # Registered once, before the automations that name them. A second registration
        # replaces each schedule with a new one, and if Prefect's scheduler ran in between, the
        # replaced schedule's runs stay beside the new one's: every slot twice, one Cancelled.
        for deployment in served:
            runner.add_deployment(deployment)
        try:
            logger.info("automations: %s", ", ".join(ensure_automations(settings)))
        except Exception:  # serving goes on: the pipeline runs without them
            logger.exception("could not create the automations (docs/operations.md)")
        logger.info("serving %s", ", ".join(f"{d.flow_name}/{d.name}" for d in served))
        try:
            asyncio.run(runner.start())
        except (KeyboardInterrupt, TerminationSignal):
            logger.info("stopped serving")


if __name__ == "__main__":
    typer.run(main)
