"""Point Prefect at the server in the settings (the one place Prefect's own settings are set)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_URL,
    PREFECT_LOGGING_EXTRA_LOGGERS,
    PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW,
    temporary_settings,
)

from pulse.config import Settings


@contextmanager
def prefect_api(settings: Settings) -> Iterator[None]:
    """Within this block, Prefect clients, and flow runs started from here, use our server.

    Flow runs the runner starts as subprocesses inherit these settings as environment variables.
    """
    updates: dict[Any, Any] = {
        PREFECT_API_URL: settings.prefect.api_url,
        # Pulse's own modules log through `tasks.*`: show those lines in the run logs too.
        PREFECT_LOGGING_EXTRA_LOGGERS: "pulse",
        # ...except lines from background threads (the alert notifier), which have no run to
        # belong to: they stay in the process log without a warning each time.
        PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore",
    }
    if settings.prefect.api_auth_string:
        updates[PREFECT_API_AUTH_STRING] = settings.prefect.api_auth_string.get_secret_value()
    with temporary_settings(updates=updates):
        yield
