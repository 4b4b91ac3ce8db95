"""One definition of the deployments: what `make run` serves and prefect.yaml (work pools)."""

from __future__ import annotations

import inspect
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
import yaml
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    SlackWebhook,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments.runner import RunnerDeployment
from prefect.events.actions import ChangeFlowRunState, RunDeployment, SendNotification
from prefect.events.schemas.automations import EventTrigger
from prefect.events.schemas.events import ResourceSpecification

from deployments import serve
from deployments.automations import (
    HEARTBEAT_SECONDS,
    channel_block,
    crash_unresponsive_runs,
    retry_failed_drains,
    send_alerts,
)
from deployments.definitions import CONSUMER_EVERY, DRAIN, GENERATOR_EVERY, RETRY, definitions
from deployments.prefect_yaml import PREFECT_YAML, render
from deployments.serve import deployments
from flows.policies import HANDOVER_SECONDS
from pulse.alerts.prefect_events import channel_resource
from pulse.config import GeneratorSettings, RetentionSettings, Settings
from pulse.pipeline.schedule_windows import window_of


def test_prefect_yaml_is_generated_from_the_definitions() -> None:
    assert PREFECT_YAML.read_text() == render(GeneratorSettings()), (
        "run: uv run python -m deployments.prefect_yaml"
    )


def test_every_yaml_entrypoint_names_the_flow_of_its_definition() -> None:
    project = yaml.safe_load(PREFECT_YAML.read_text())
    for entry, definition in zip(
        project["deployments"], definitions(GeneratorSettings(), RetentionSettings()), strict=True
    ):
        path, function = entry["entrypoint"].split(":")
        assert function == definition.flow.fn.__name__
        assert path.startswith("flows/") and path.endswith(".py")


@pytest.mark.parametrize("served", deployments(Settings()), ids=lambda d: f"{d.flow_name}/{d.name}")
def test_served_deployments_follow_the_definitions(served: Any) -> None:
    by_name = {d.full_name: d for d in definitions(Settings().generator, Settings().retention)}
    definition = by_name[f"{served.flow_name}/{served.name}"]
    intervals = [schedule.schedule.interval for schedule in served.schedules or []]
    assert intervals == ([definition.every] if definition.every else [])
    limit = served.concurrency_limit
    assert limit == definition.limit
    assert served.parameters == definition.parameters
    windowed = "window_seconds" in inspect.signature(definition.flow.fn).parameters
    if definition.every and windowed:  # a scheduled run works for one window of its schedule
        assert served.parameters["window_seconds"] == definition.every.total_seconds()


def test_every_flow_has_a_timeout_longer_than_its_scheduled_window() -> None:
    for definition in definitions(GeneratorSettings(), RetentionSettings()):
        timeout = definition.flow.timeout_seconds
        assert timeout is not None, f"{definition.full_name} has no timeout"
        if definition.every is not None:  # a scheduled run lasts about one window
            assert timeout >= 5 * definition.every.total_seconds(), definition.full_name


def test_a_failed_drain_starts_the_retry_deployment() -> None:
    drain, retry = uuid4(), uuid4()
    automation = retry_failed_drains(drain, retry)
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {
        "prefect.flow-run.Failed",
        "prefect.flow-run.Crashed",
        "prefect.flow-run.TimedOut",
    }
    assert isinstance(trigger.match_related, ResourceSpecification)
    assert trigger.match_related.root == {
        "prefect.resource.id": f"prefect.deployment.{drain}",
        "prefect.resource.role": "deployment",
    }
    (action,) = automation.actions
    assert isinstance(action, RunDeployment) and action.deployment_id == retry


def test_unresponsive_runs_are_crashed_after_three_missed_heartbeats() -> None:
    automation = crash_unresponsive_runs([uuid4()])
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.posture == "Proactive" and trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.within.total_seconds() == 3 * HEARTBEAT_SECONDS
    assert trigger.for_each == {"prefect.resource.id"}
    (action,) = automation.actions
    assert isinstance(action, ChangeFlowRunState) and action.state == StateType.CRASHED


def test_an_alert_event_naming_a_channel_is_sent_to_that_channels_block() -> None:
    block = uuid4()
    automation = send_alerts("ops", block)
    trigger = automation.trigger
    assert isinstance(trigger, EventTrigger)
    assert trigger.expect == {"pulse.alert.firing"} and trigger.threshold == 1
    assert isinstance(trigger.match_related, ResourceSpecification)
    assert trigger.match_related.root["prefect.resource.id"] == channel_resource("ops")
    (action,) = automation.actions
    assert isinstance(action, SendNotification) and action.block_document_id == block
    # The engine puts the title and body in the event (pulse/alerts/notifier.py:message).
    assert "event.payload.title" in action.subject and "event.payload.body" in action.body


def test_the_automations_name_deployments_that_exist() -> None:
    names = {d.full_name for d in definitions(GeneratorSettings(), RetentionSettings())}
    assert {DRAIN, RETRY} <= names


def test_a_json_channel_becomes_a_webhook_block_with_its_credentials_kept_secret() -> None:
    block = channel_block("jsons://ops:s3cret@hooks.example.com:8443/pulse")
    assert isinstance(block, CustomWebhookNotificationBlock)
    assert block.url == "https://hooks.example.com:8443/pulse"
    assert "s3cret" not in block.model_dump_json()  # stored only as a secret value
    assert block.headers == {"Authorization": "Basic {{auth}}"}
    assert block.json_data is not None and block.json_data["title"] == "{{subject}}"


def test_a_slack_channel_uses_prefects_slack_block() -> None:
    slack = channel_block("https://hooks.slack.com/services/T0/B0/XYZ")
    assert isinstance(slack, SlackWebhook)


def test_a_channel_prefect_cannot_reach_gets_no_block() -> None:
    assert channel_block("mailto://ops:pw@example.com") is None


def test_serving_registers_each_deployment_once_before_the_automations(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second registration replaces every schedule, and runs Prefect's scheduler made for the
    # replaced one in between stay: each stream slot ran twice (one Cancelled) in a soak.
    events: list[str] = []

    class Runner:
        def __init__(self, **options: Any) -> None:
            assert options["pause_on_shutdown"] is False

        def add_deployment(self, deployment: RunnerDeployment) -> UUID:
            events.append(f"register {deployment.flow_name}/{deployment.name}")
            return uuid4()

        async def start(self) -> None:
            events.append("start")

    def automations(settings: Settings) -> list[str]:
        events.append("automations")
        return []

    def applied(deployment: RunnerDeployment, *_: Any, **__: Any) -> None:
        events.append(f"apply {deployment.flow_name}/{deployment.name}")

    monkeypatch.setattr(serve, "Runner", Runner)
    monkeypatch.setattr(RunnerDeployment, "apply", applied)
    monkeypatch.setattr(serve, "serve_metrics", lambda settings: None)
    monkeypatch.setattr(serve, "release_stale_runs", lambda names: 0)
    monkeypatch.setattr(serve, "ensure_automations", automations)
    opened: list[list[timedelta]] = []

    def open_first_windows(windowed: dict[UUID, timedelta], anchor: datetime) -> int:
        opened.append(sorted(windowed.values()))
        events.append("open")
        return len(windowed)

    monkeypatch.setattr(serve, "open_first_windows", open_first_windows)

    serve.main(paused=False)

    names = [f"{d.flow_name}/{d.name}" for d in serve.deployments(Settings())]
    assert events == [f"register {name}" for name in names] + ["open", "automations", "start"]
    assert opened == [[GENERATOR_EVERY, CONSUMER_EVERY]]  # the stream's and the drain's


@pytest.mark.parametrize("every", [GENERATOR_EVERY, CONSUMER_EVERY])
def test_a_first_window_is_open_at_once_and_ends_where_the_schedule_begins(
    every: timedelta,
) -> None:
    registered = datetime(2026, 12, 7, 12, 0, 0, tzinfo=UTC)
    anchor = registered + serve.FIRST_SLOT_IN
    first = window_of(anchor - every, every.total_seconds(), HANDOVER_SECONDS)
    scheduled = window_of(anchor, every.total_seconds(), HANDOVER_SECONDS)
    assert first.start <= registered  # it streams (or drains) as soon as its run starts
    assert first.end == scheduled.start  # no gap and no overlap with the first scheduled run
