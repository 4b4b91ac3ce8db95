"""What the flows share: timeouts, and which window of wall-clock time a scheduled run owns.
(Task retries: tasks/retries.py; who hears about a failed run: deployments/automations.py.)"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import get_run_logger
from prefect.runtime import deployment as current_deployment
from prefect.runtime import flow_run as current_run

from pulse.pipeline.schedule_windows import Window, window_of

HANDOVER_SECONDS = 15.0
"""How late after its scheduled time a run may start without leaving a gap
(pulse/pipeline/schedule_windows.py). Flow-run start-up here takes 3-10 s, most of it importing
Prefect in a new process."""
DRAIN_TIMEOUT_SECONDS = 900.0
"""A consumer run still going after this long is hung: Prefect fails it (state TimedOut) so
the next scheduled run can take the partitions. A scheduled run lasts its 120 s window."""
MAX_DRAIN_BUDGET_SECONDS = DRAIN_TIMEOUT_SECONDS - 120
"""The longest time budget a consumer run accepts: its timeout minus room to replay and flush."""
GENERATE_TIMEOUT_SECONDS = 3600.0
"""Manual generator runs can be long (a million events at the default pace takes half an hour)."""
RECOVERY_TIMEOUT_SECONDS = 1800.0
"""Retry and replay runs re-read recorded offset ranges; half an hour means something is stuck."""
MAINTAIN_TIMEOUT_SECONDS = 3600.0
"""A retention pass removes at most a week of minutes per collection (seconds, usually); an
hour means it is stuck."""
JOIN_AHEAD_SECONDS = 5.0
"""Consumer runs join their group this long before their window opens (less than the
handover, so the run has started by then): one overlap, not a gap, at each handover."""
FLUSH_QUIET_SECONDS = JOIN_AHEAD_SECONDS + 5.0
"""A consumer run starts no entity flush in its window's last seconds. Its successor joins
JOIN_AHEAD_SECONDS before the end, and the partitions handed over wait for a flush being
written then: 2.3-2.7 s in `make run`, the freshness spikes at a handover. The 5 s more leave
a flush started just before the quiet time room to end before the successor joins (p99 2.5 s)."""


def drain_budget(requested: float | None, configured: float) -> float:
    """A consumer run's time budget: the requested one, else the setting, at most
    MAX_DRAIN_BUDGET_SECONDS (said in the run's log when it cuts the setting short)."""
    budget = requested or configured
    if budget > MAX_DRAIN_BUDGET_SECONDS:
        get_run_logger().warning(
            "PULSE_CONSUMER_TIME_BUDGET_SECONDS=%g is longer than a consumer run may last; "
            "draining for %g s (`pulse consume` has no such limit)",
            budget,
            MAX_DRAIN_BUDGET_SECONDS,
        )
    return min(budget, MAX_DRAIN_BUDGET_SECONDS)


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


def run_name() -> str:
    """A flow run's name: its deployment and scheduled start, e.g. 'drain 2026-11-28 10:02:00'
    (Prefect's default is a random pair of words, thousands a day)."""
    scheduled = current_run.scheduled_start_time
    label = current_deployment.name or current_run.flow_name
    return f"{label} {scheduled.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
