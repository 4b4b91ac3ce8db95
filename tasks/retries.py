"""Which task failures are worth a retry, and how long to wait between attempts."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun
from pymongo.errors import ConnectionFailure, ExecutionTimeout

TRANSIENT = (ConnectionFailure, ExecutionTimeout)
"""Database unreachable or slow: worth retrying. A refused write is not."""

RETRY_DELAYS = [1.0, 5.0, 15.0]


def transient_failure(task: Task[..., Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only when the database was unreachable or timed out."""
    return isinstance(state.result(raise_on_failure=False), TRANSIENT)
