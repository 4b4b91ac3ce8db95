"""Send a message to the configured Apprise channels; a failing channel never raises."""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import apprise
from pydantic import SecretStr

log = logging.getLogger(__name__)

LEVELS = {
    "info": apprise.NotifyType.INFO,
    "warning": apprise.NotifyType.WARNING,
    "critical": apprise.NotifyType.FAILURE,
    "resolved": apprise.NotifyType.SUCCESS,
}


@dataclass(frozen=True)
class Delivery:
    """The outcome for one channel, safe to store and log (no credentials)."""

    channel: str
    """The channel's name with its scheme and host only, e.g. 'ops (slack://)'."""
    ok: bool
    error: str | None = None


def redact(url: str) -> str:
    """A channel URL without credentials, path or query: scheme and host at most."""
    match = re.match(r"^([a-z0-9+.-]+)://(?:[^@/]*@)?([^/:?#]*)", url, re.IGNORECASE)
    if not match:
        return "channel"
    scheme, host = match.groups()
    return (
        f"{scheme}://{host}"
        if scheme.lower() in {"json", "jsons", "form", "forms", "xml", "xmls"}
        else f"{scheme}://"
    )


def send(
    channels: Mapping[str, SecretStr],
    title: str,
    body: str,
    level: str = "warning",
    timeout: float = 5.0,
) -> list[Delivery]:
    """Deliver to each channel separately, so one failure is recorded and the rest still go out."""
    deliveries = []
    for label, secret in channels.items():
        url = secret.get_secret_value()
        name = f"{label} ({redact(url)})"
        notifier = apprise.Apprise()
        if not notifier.add(url):
            deliveries.append(Delivery(name, ok=False, error="not a valid Apprise URL"))
            continue
        try:
            result = notifier.notify(
                body=body,
                title=title,
                notify_type=LEVELS.get(level, apprise.NotifyType.INFO),
                timeout=timeout,
            )
        except Exception as exc:  # a channel must never break the pipeline, whatever it raises
            deliveries.append(Delivery(name, ok=False, error=type(exc).__name__))
            continue
        deliveries.append(
            Delivery(name, ok=bool(result), error=None if result else "delivery failed")
        )
    for delivery in deliveries:
        if not delivery.ok:
            log.warning("alert channel %s failed: %s", delivery.channel, delivery.error)
    return deliveries
