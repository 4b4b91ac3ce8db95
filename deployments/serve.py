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
from uuid import UUID

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
from prefect.schedules import Interval
from prefect.states import Crashed, Scheduled

from deployments.automations import HEARTBEAT_SECONDS, ensure_automations
from deployments.definitions import Definition, definitions
from pulse.config import Settings, load_settings
from pulse.metrics.server import MetricsPortError, serve_metrics
from pulse.prefect_api import prefect_api

FIRST_SLOT_IN = timedelta(seconds=45)
"""How far ahead of registration each schedule's first slot lies; the first windows
(`open_first_windows`) own the time until then. Prefect's scheduler only makes runs for slots
still ahead of it, and it sees a new deployment within 5 s (its recent-deployments loop): a
first slot 5 s ahead was missed about half the time, and the first run came one whole interval
later (60 s for the stream, 120 s for the drain). Far enough ahead, the first windows' runs
also start alone: at 15 s, five flow-run processes started at once on two cores, and each
took 10-16 s to begin."""
FIRST_WINDOW_TAG = "first-window"
RUNNER_POLL_SECONDS = 2.0  # how soon a due run starts; Prefect's default is 10 s


def _at_most(runs: int) -> ConcurrencyLimitConfig:
    # A run due while `runs` runs are live is cancelled, not queued (definitions.py says why).
    return ConcurrencyLimitConfig(
        limit=runs, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
    )


def _runner_deployment(definition: Definition, paused: bool, anchor: datetime) -> RunnerDeployment:
    deployment = definition.flow.to_deployment(
        name=definition.name,
        schedules=[Interval(definition.every, anchor_date=anchor)] if definition.every else None,
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


def deployments(
    settings: Settings, paused: bool = False, anchor: datetime | None = None
) -> list[RunnerDeployment]:
    """The deployments of definitions.py, the stream's parameters from the settings; every
    schedule's first slot at `anchor` (default: FIRST_SLOT_IN from now)."""
    first = anchor or datetime.now(UTC) + FIRST_SLOT_IN
    return [
        _runner_deployment(d, paused, first)
        for d in definitions(settings.generator, settings.retention)
    ]


def open_first_windows(windowed: dict[UUID, timedelta], anchor: datetime) -> int:
    """A run of each windowed deployment (id: its interval), due one interval before the
    schedule's first slot at `anchor`.

    Its window (pulse/pipeline/schedule_windows.py) is open already and ends where the first
    scheduled run's begins, so the generator streams and the drain counts within seconds of
    `make run` instead of waiting for the first slot and its handover, and the schedule takes
    over without a gap or an overlap."""
    with get_client(sync_client=True) as client:
        for deployment_id, every in windowed.items():
            client.create_flow_run_from_deployment(
                deployment_id,
                state=Scheduled(scheduled_time=anchor - every),
                tags=[FIRST_WINDOW_TAG],
            )
    return len(windowed)


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
            # Runs due on the previous runner's schedule (and its first windows): this runner
            # anchors a new one, and both would stream at once (pulse/pipeline/schedule_windows.py
            # relies on one schedule).
            for run in client.read_flow_runs(
                flow_run_filter=FlowRunFilter(state=FlowRunFilterState(type=scheduled)),
                deployment_filter=only_this,
            ):
                if run.auto_scheduled or FIRST_WINDOW_TAG in run.tags:
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
        anchor = datetime.now(UTC) + FIRST_SLOT_IN
        served = deployments(settings, paused=paused, anchor=anchor)
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
        windowed: dict[UUID, timedelta] = {}
        for deployment in served:
            deployment_id = runner.add_deployment(deployment)
            if not isinstance(deployment_id, UUID):  # typed sync-or-async; sync here
                raise TypeError("add_deployment() must be called outside an event loop")
            if "window_seconds" in deployment.parameters and not paused:
                windowed[deployment_id] = timedelta(seconds=deployment.parameters["window_seconds"])
        if windowed:
            open_first_windows(windowed, anchor)
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
