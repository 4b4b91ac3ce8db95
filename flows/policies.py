"""What the flows share: who hears about a failed run, and which window of wall-clock time a
scheduled run owns. (Task retries: tasks/retries.py.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from prefect import Flow
from prefect.client.schemas.objects import FlowRun, State
from prefect.logging import get_logger
from prefect.runtime import flow_run as current_run

from pulse.alerts.channels import send
from pulse.config import load_settings
from pulse.pipeline.windows import Window, window_of

HANDOVER_SECONDS = 15.0
"""How late after its scheduled time a run may start without leaving a gap
(pulse/pipeline/windows.py). Flow-run start-up here takes 3-10 s, most of it importing
Prefect in a new process."""
JOIN_AHEAD_SECONDS = 5.0
"""Consumer runs join their group this long before their window opens (less than the
handover, so the run has started by then): one overlap, not a gap, at each handover."""


def wait_for_window(
    every_seconds: float, handover_seconds: float, ahead_seconds: float = 0.0
) -> tuple[Window, float]:
    """The current flow run's window (from its scheduled start), waited for until
    `ahead_seconds` before it opens; returns it and the seconds left until it closes."""
    scheduled = current_run.scheduled_start_time
    window = window_of(
        datetime.fromtimestamp(scheduled.timestamp(), UTC), every_seconds, handover_seconds
    )
    time.sleep(max(0.0, window.wait_before(datetime.now(UTC)) - ahead_seconds))
    return window, max(0.0, (window.end - datetime.now(UTC)).total_seconds())


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
