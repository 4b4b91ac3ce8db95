"""One definition of the deployments: what `make run` serves and prefect.yaml (work pools)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from deployments.definitions import definitions
from deployments.prefect_yaml import PREFECT_YAML, render
from deployments.serve import deployments
from pulse.config import GeneratorSettings, Settings


def test_prefect_yaml_is_generated_from_the_definitions() -> None:
    assert PREFECT_YAML.read_text() == render(GeneratorSettings()), (
        "run: uv run python -m deployments.prefect_yaml"
    )


def test_every_yaml_entrypoint_names_the_flow_of_its_definition() -> None:
    project = yaml.safe_load(PREFECT_YAML.read_text())
    for entry, definition in zip(
        project["deployments"], definitions(GeneratorSettings()), strict=True
    ):
        path, function = entry["entrypoint"].split(":")
        assert function == definition.flow.fn.__name__
        assert path.startswith("flows/") and path.endswith(".py")


@pytest.mark.parametrize("served", deployments(Settings()), ids=lambda d: f"{d.flow_name}/{d.name}")
def test_served_deployments_follow_the_definitions(served: Any) -> None:
    by_name = {d.full_name: d for d in definitions(Settings().generator)}
    definition = by_name[f"{served.flow_name}/{served.name}"]
    intervals = [schedule.schedule.interval for schedule in served.schedules or []]
    assert intervals == ([definition.every] if definition.every else [])
    limit = served.concurrency_limit
    assert limit == definition.limit
    assert served.parameters == definition.parameters
    if definition.every:  # a scheduled run works for exactly one window of its schedule
        assert served.parameters["window_seconds"] == definition.every.total_seconds()
