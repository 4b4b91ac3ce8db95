"""The served deployments (`make run`) and prefect.yaml (work pools) define the same pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deployments.serve import deployments
from pulse.config import Settings

PREFECT_YAML = Path(__file__).resolve().parents[2] / "deployments" / "prefect.yaml"


def _yaml_deployments() -> dict[tuple[str, str], dict[str, Any]]:
    project = yaml.safe_load(PREFECT_YAML.read_text())
    by_key = {}
    for entry in project["deployments"]:
        module = entry["entrypoint"].split(":")[0]
        by_key[(Path(module).stem, entry["name"])] = entry
    return by_key


MODULES = {
    "generate-interactions": "generate",
    "aggregate-interactions": "aggregate",
    "retry-failed-batches": "retry",
    "replay-dead-letters": "replay",
}


@pytest.mark.parametrize("served", deployments(Settings()), ids=lambda d: f"{d.flow_name}/{d.name}")
def test_prefect_yaml_matches_the_served_deployment(served: Any) -> None:
    entry = _yaml_deployments()[(MODULES[served.flow_name], served.name)]
    intervals = [schedule.schedule.interval.total_seconds() for schedule in served.schedules or []]
    assert [schedule["interval"] for schedule in entry.get("schedules", [])] == intervals
    limit = served.concurrency_limit
    assert entry.get("concurrency_limit", {}).get("limit") == limit
    for name, value in entry.get("parameters", {}).items():
        assert served.parameters.get(name) == value, name
    if intervals:  # a scheduled run works for one window of its schedule
        assert served.parameters["window_seconds"] == intervals[0]
