"""What the flows share: which failures are worth a retry, and who hears about a failed run."""

from __future__ import annotations

from typing import Any

from prefect import Flow, Task
from prefect.client.schemas.objects import FlowRun, State, TaskRun
from prefect.logging import get_logger
from pymongo.errors import ConnectionFailure, ExecutionTimeout

from tasks.notify import send
from tasks.settings import load_settings

TRANSIENT = (ConnectionFailure, ExecutionTimeout)
"""Database unreachable or slow: worth retrying. A refused write is not."""

RETRY_DELAYS = [1.0, 5.0, 15.0]


def transient_failure(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only when the database was unreachable or timed out."""
    return isinstance(state.result(raise_on_failure=False), TRANSIENT)


def notify_failure(flow: Flow[..., Any], flow_run: FlowRun, state: State[Any]) -> None:
    """Tell the alert channels that a run failed or crashed (on_failure / on_crashed hook)."""
    settings = load_settings()
    title = f"Pulse: {flow.name} run {flow_run.name} {state.type.value.lower()}"
    body = f"{state.message or 'no message'}\nflow run id: {flow_run.id}"
    get_logger("pulse.notify").error("%s: %s", title, state.message)
    send(
        settings.alerts.channels,
        title,
        body,
        level="critical",
        timeout=settings.alerts.channel_timeout_seconds,
    )
