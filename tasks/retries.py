"""Which task failures are worth a retry, and how long to wait between attempts."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from pulse.pipeline.failures import is_transient

RETRY_DELAYS = [1.0, 5.0, 15.0]


def transient_failure(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only when the database or the broker was unreachable or too slow
    (pulse/pipeline/failures.py); a refused write has been isolated already, or is a fault
    that a retry would only repeat."""
    error = state.result(raise_on_failure=False)
    return isinstance(error, BaseException) and is_transient(error)
