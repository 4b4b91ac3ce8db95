"""Pulse's Prefect automations, defined in code and created (or updated) by `make run`.

Prefect's server runs them, so they keep working when the process that served a run is gone:

- pulse: retry failed drains      a drain run that fails, crashes or times out starts
                                  retry-failed-batches/manual (idempotent: it re-applies only
                                  unfinished batches over their recorded offsets)
- pulse: crash unresponsive runs  a run that stops sending heartbeats for 90 s is marked
                                  Crashed (Prefect's zombie-run recipe), which frees its
                                  deployment's concurrency slot
- pulse: notify failed runs       a Pulse flow run that fails, crashes or times out is sent to
                                  every channel of PULSE_ALERTS_CHANNELS Prefect can reach
                                  (JSON webhooks and Slack: one notification block each)
- pulse: send alerts to <channel> with PULSE_ALERTS_ROUTE=prefect, one per such channel: an
                                  alert's `pulse.alert.firing` event naming the channel is sent
                                  to it (with the default route, the consumer sends alerts)

docs/operations.md shows them in the Prefect UI.
"""

from __future__ import annotations

import base64
import logging
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from uuid import UUID

from prefect.automations import AutomationCore
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.fields import SecretDict
from prefect.blocks.notifications import (
    CustomWebhookNotificationBlock,
    SlackWebhook,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import StateType
from prefect.events.actions import ChangeFlowRunState, RunDeployment, SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from prefect.events.schemas.events import ResourceSpecification
from pydantic import SecretStr

from deployments.definitions import DRAIN, RETRY, definitions
from pulse.alerts.prefect_events import channel_resource
from pulse.config import Settings

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
"""PREFECT_FLOWS_HEARTBEAT_FREQUENCY of the runs served by `make run` (Prefect's minimum)."""
UNRESPONSIVE_AFTER = timedelta(seconds=3 * HEARTBEAT_SECONDS)
FAILED_EVENTS = {"prefect.flow-run.Failed", "prefect.flow-run.Crashed", "prefect.flow-run.TimedOut"}
PREFIX = "pulse: "


def retry_failed_drains(drain_id: UUID, retry_id: UUID) -> AutomationCore:
    return AutomationCore(
        name=f"{PREFIX}retry failed drains",
        description="A failed, crashed or timed-out drain run starts retry-failed-batches.",
        trigger=_failed_run_of(_deployment(drain_id)),
        actions=[RunDeployment(source="selected", deployment_id=retry_id, parameters={})],
    )


def crash_unresponsive_runs(deployment_ids: list[UUID]) -> AutomationCore:
    return AutomationCore(
        name=f"{PREFIX}crash unresponsive runs",
        description="A Pulse run without a heartbeat for 90 s is marked Crashed.",
        trigger=EventTrigger(
            after={"prefect.flow-run.heartbeat"},
            expect={"prefect.flow-run.heartbeat", *FAILED_EVENTS}
            | {"prefect.flow-run.Completed", "prefect.flow-run.Cancelled"},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=_deployments(deployment_ids),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=UNRESPONSIVE_AFTER,
        ),
        actions=[
            ChangeFlowRunState(
                state=StateType.CRASHED,
                message=f"No heartbeat for {UNRESPONSIVE_AFTER.total_seconds():.0f} s: its "
                "runner is gone",
            )
        ],
    )


def notify_failed_runs(deployment_ids: list[UUID], blocks: list[UUID]) -> AutomationCore:
    return AutomationCore(
        name=f"{PREFIX}notify failed runs",
        description="A failed, crashed or timed-out Pulse run is sent to the alert channels.",
        trigger=_failed_run_of(_deployments(deployment_ids)),
        actions=[
            SendNotification(
                block_document_id=block,
                subject="Pulse: {{ flow.name }} run {{ flow_run.name }} {{ flow_run.state.name }}",
                body="{{ flow_run.state.message }}\nflow run id: {{ flow_run.id }}",
            )
            for block in blocks
        ],
    )


def send_alerts(channel: str, block: UUID) -> AutomationCore:
    return AutomationCore(
        name=f"{PREFIX}send alerts to {channel}",
        description=f"A firing Pulse alert meant for the channel {channel!r} is sent to it "
        "(PULSE_ALERTS_ROUTE=prefect).",
        trigger=EventTrigger(
            expect={"pulse.alert.firing"},
            match={"prefect.resource.id": "pulse.alert.*"},
            match_related={
                "prefect.resource.id": channel_resource(channel),
                "prefect.resource.role": "channel",
            },
            posture=Posture.Reactive,
            threshold=1,
        ),
        actions=[
            SendNotification(
                block_document_id=block,
                subject="{{ event.payload.title }}",
                body="{{ event.payload.body }}",
            )
        ],
    )


def ensure_automations(settings: Settings) -> list[str]:
    """Create or update Pulse's automations (after the deployments are registered); returns
    their names. Automations named `pulse: …` that are no longer wanted are removed."""
    with get_client(sync_client=True) as client:
        names = [d.full_name for d in definitions(settings.generator, settings.retention)]
        ids = {name: client.read_deployment_by_name(name).id for name in names}
        wanted = [
            retry_failed_drains(ids[DRAIN], ids[RETRY]),
            crash_unresponsive_runs(list(ids.values())),
        ]
        blocks = _channel_blocks(settings.alerts.channels)
        if blocks:
            wanted.append(notify_failed_runs(list(ids.values()), list(blocks.values())))
        if settings.alerts.route == "prefect":
            wanted += [send_alerts(channel, block) for channel, block in blocks.items()]
        # Updated in place, not deleted and re-created: no moment without them.
        ours = [a for a in client.read_automations() if a.name.startswith(PREFIX)]
        for automation in wanted:
            same = [a for a in ours if a.name == automation.name]
            if same:
                client.update_automation(same[0].id, automation)
                ours.remove(same[0])
            else:
                client.create_automation(automation)
        for unwanted in ours:  # no longer defined, or a duplicate
            client.delete_automation(unwanted.id)
    return [automation.name for automation in wanted]


def _channel_blocks(channels: dict[str, SecretStr]) -> dict[str, UUID]:
    """A saved Prefect notification block per alert channel Prefect can reach, by channel."""
    ids = {}
    for name, url in sorted(channels.items()):
        block = channel_block(url.get_secret_value())
        if block is None:
            log.warning(
                "alert channel %r: Prefect has no notification block for its kind of URL; "
                "failed runs are not sent there, nor alerts with PULSE_ALERTS_ROUTE=prefect",
                name,
            )
            continue
        saved = block.save(f"pulse-{_slug(name)}", overwrite=True)
        if not isinstance(saved, UUID):  # save() is sync outside an event loop
            raise TypeError("ensure_automations() must be called outside an event loop")
        ids[name] = saved
    return ids


def channel_block(url: str) -> NotificationBlock | None:
    """The Prefect notification block that reaches an Apprise channel URL, or None.

    Prefect's server sends an automation's notification with one of its own block types, so
    only the kinds it has are covered: JSON webhooks (Apprise `json://`, `jsons://`) and Slack.
    Credentials stay secret: a webhook's user and password go into the
    block's secret values, not into its URL.
    """
    parts = urlsplit(url)
    if parts.scheme in ("json", "jsons"):
        scheme = "https" if parts.scheme == "jsons" else "http"
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        secrets: dict[str, str] = {}
        headers: dict[str, str] = {}
        if parts.username:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            secrets["auth"] = base64.b64encode(credentials.encode()).decode()
            headers["Authorization"] = "Basic {{auth}}"
        return CustomWebhookNotificationBlock(
            name="pulse",
            url=urlunsplit((scheme, netloc, parts.path, "", "")),
            # The body Apprise's json:// sends, so one receiver reads alerts and failed runs.
            json_data={
                "version": "1.0",
                "title": "{{subject}}",
                "message": "{{body}}",
                "type": "failure",
            },
            headers=headers or None,
            secrets=SecretDict(secrets),
        )
    if parts.scheme == "slack" or parts.hostname in ("hooks.slack.com", "hooks.slack-gov.com"):
        return SlackWebhook(url=SecretStr(url))
    return None


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "-" for ch in name.lower()).strip("-") or "channel"


def _failed_run_of(deployments: dict[str, Any]) -> EventTrigger:
    """Fires once for each run of these deployments that fails, crashes or times out."""
    return EventTrigger(
        expect=FAILED_EVENTS,
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related=deployments,
        posture=Posture.Reactive,
        threshold=1,
    )


def _deployment(deployment_id: UUID) -> dict[str, Any]:
    return {
        "prefect.resource.id": f"prefect.deployment.{deployment_id}",
        "prefect.resource.role": "deployment",
    }


def _deployments(deployment_ids: list[UUID]) -> dict[str, Any]:
    return {
        "prefect.resource.id": [f"prefect.deployment.{i}" for i in deployment_ids],
        "prefect.resource.role": "deployment",
    }
