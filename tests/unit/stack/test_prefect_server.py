"""The Prefect server `make run` starts keeps its database bounded, as Prefect reads it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from prefect.settings import Settings as PrefectSettings

from pulse.config import load_settings
from pulse.stack.prefect_server import PrefectServer, retention_env


def test_prefect_reads_the_retention_it_is_started_with(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in retention_env(2 * 86_400).items():
        monkeypatch.setenv(name, value)
    server = PrefectSettings().server
    enabled = server.services.db_vacuum.enabled
    assert isinstance(enabled, set) and {"events", "flow_runs"} <= enabled
    assert server.services.db_vacuum.retention_period == timedelta(days=2)
    assert server.events.retention_period == timedelta(days=2)


def test_the_local_server_is_launched_with_the_retention_setting(tmp_path: Path) -> None:
    settings = load_settings(stack={"prefect_retention_days": 0.5, "state_dir": tmp_path})
    launch = PrefectServer(settings.prefect, settings.stack).prepare(say=lambda _: None)
    assert launch.env is not None
    assert launch.env["PREFECT_SERVER_SERVICES_DB_VACUUM_RETENTION_PERIOD"] == "PT43200S"
    assert launch.env["PREFECT_SERVER_EVENTS_RETENTION_PERIOD"] == "PT43200S"
