"""`prefect server start` (API, UI, scheduler) with its SQLite database in the state folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from pulse.config import PrefectSettings, StackSettings
from pulse.stack.service import Endpoint, Launch, LocalService, Say


class PrefectServer(LocalService):
    """The Prefect server the flows report to and the deployments are scheduled by."""

    name = "prefect"

    def __init__(self, prefect: PrefectSettings, stack: StackSettings) -> None:
        super().__init__(stack.state_dir)
        self.prefect = prefect
        self.retention_seconds = round(stack.prefect_retention_days * 86_400)
        self._endpoint = Endpoint.parse(prefect.api_url, 4200)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def url(self) -> str:
        return self.prefect.api_url.removesuffix("/").removesuffix("/api")

    def answers(self) -> bool:
        auth = None
        if self.prefect.api_auth_string:
            user, _, password = self.prefect.api_auth_string.get_secret_value().partition(":")
            auth = (user, password)
        try:
            response = httpx.get(f"{self.prefect.api_url.rstrip('/')}/health", timeout=2, auth=auth)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def prepare(self, say: Say) -> Launch:
        if not self.endpoint.is_local:
            raise RuntimeError(
                f"PULSE_PREFECT_API_URL points at {self.endpoint}, which does not answer, and "
                "Pulse only starts a server on this machine (127.0.0.1/localhost)"
            )
        self.home.mkdir(parents=True, exist_ok=True)
        prefect = Path(sys.executable).with_name("prefect")
        command = [
            str(prefect),
            "server",
            "start",
            "--host",
            self.endpoint.host,
            "--port",
            str(self.endpoint.port),
            "--analytics-off",
        ]
        env = {
            **os.environ,  # PATH and friends for the server's own children
            "PREFECT_HOME": str(self.home.resolve()),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": "WARNING",
            **retention_env(self.retention_seconds),
        }
        env.pop("PREFECT_API_URL", None)  # the server must not try to talk to itself as a client
        return Launch(command, env=env)


def retention_env(seconds: int) -> dict[str, str]:
    """Prefect server settings that keep its database bounded: the vacuum service deletes flow
    runs (and their task runs, logs, artifacts) and events older than `seconds`, looking
    hourly, or four times per retention when that is shorter."""
    return {
        "PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED": '["events", "flow_runs"]',
        "PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD": f"PT{seconds}S",
        "PREFECT_SERVER_SERVICES_DB_VACUUM_LOOP_SECONDS": str(max(60, min(3_600, seconds // 4))),
        "PREFECT_SERVER_EVENTS_RETENTION_PERIOD": f"PT{seconds}S",
    }
