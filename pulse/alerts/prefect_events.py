"""Alerts as Prefect events, so Prefect automations can route them; Prefect is imported only
where an alert is emitted (the `pulse` command starts without it)."""

from __future__ import annotations

import logging

from pulse.store.client import Document

log = logging.getLogger(__name__)


def load_prefect_events() -> None:
    """Import what emitting needs ahead of the first alert (it takes seconds of CPU)."""
    import prefect.events  # noqa: F401, PLC0415 - what emit_alert_event imports


def emit_alert_event(alert: Document, title: str, body: str, *, channels: list[str]) -> bool:
    """So that Prefect automations can route alerts: the ones `make run` creates for the
    `channels` named here (PULSE_ALERTS_ROUTE=prefect), or the user's own. False when no
    Prefect API is set or the event could not be emitted."""
    try:
        from prefect.events import emit_event  # noqa: PLC0415 - Prefect only where it runs
        from prefect.settings import get_current_settings  # noqa: PLC0415

        if not get_current_settings().api.url:
            return False
        event = emit_event(
            event=f"pulse.alert.{alert['state']}",
            resource={
                "prefect.resource.id": f"pulse.alert.{alert['rule_id']}.{alert['key']}",
                "prefect.resource.name": alert["rule_id"],
            },
            related=[
                {"prefect.resource.id": channel_resource(name), "prefect.resource.role": "channel"}
                for name in channels
            ],
            payload={
                key: str(alert.get(key))
                for key in ("rule_id", "key", "value", "threshold", "severity", "window_start")
            }
            | {"title": title, "body": body},
        )
    except Exception:  # an event bus problem must not stop alert delivery
        log.exception("could not emit the Prefect event of alert %s", alert.get("_id"))
        return False
    return event is not None


def channel_resource(channel: str) -> str:
    """The Prefect resource id of an alert channel, named on the events meant for it."""
    return f"pulse.channel.{channel}"
