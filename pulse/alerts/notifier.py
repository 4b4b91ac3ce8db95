"""Sending alerts: on a background thread, so a slow or failing channel never holds up or
fails the pipeline; each alert's outcome is stored on it (`delivery`)."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime

from pymongo.database import Database

from pulse.alerts.channels import Delivery, send
from pulse.alerts.prefect_events import emit_alert_event, load_prefect_events
from pulse.config import AlertSettings
from pulse.store import alerts as alerts_store
from pulse.store.client import Document

log = logging.getLogger(__name__)

MAX_QUEUED_NOTIFICATIONS = 100
"""Notifications waiting to be sent, at most; more stay `pending` in MongoDB and are sent by
the next consumer to start (at-least-once), so a flood of alerts never fills memory."""
CLOSE_WAIT_SECONDS = 10.0
"""How long a consumer that stops waits for notifications being sent."""


class Notifier:
    """Sends new alerts to their channels on a background thread and records the outcome;
    at most MAX_QUEUED_NOTIFICATIONS wait at a time."""

    def __init__(self, db: Database[Document], settings: AlertSettings) -> None:
        self.db = db
        self.settings = settings
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-notifier")
        self._queued: set[Future[None]] = set()
        # Reentrant: a delivery done already runs its callback (`_sent`) in `deliver` itself.
        self._lock = threading.RLock()
        self.left_pending = 0
        """Alerts not queued because the queue was full (sent by the next consumer)."""

    def prepare(self) -> None:
        """Load what sending needs, now, on the notifier's thread. Importing Prefect (for its
        events) takes seconds of CPU and holds the GIL: at the first alert, in the middle of a
        drain, it stalls the consumer; here it overlaps the consumer's wait to join its group."""
        self._pool.submit(load_prefect_events)

    def resend_pending(self) -> None:
        """Deliver the alerts a previous process stored but did not get to send."""
        self.deliver(alerts_store.pending_ids(self.db))

    def deliver(self, alert_ids: list[str]) -> None:
        with self._lock:
            room = MAX_QUEUED_NOTIFICATIONS - len(self._queued)
            for alert_id in alert_ids[: max(room, 0)]:
                future = self._pool.submit(self._send, alert_id)
                self._queued.add(future)
                future.add_done_callback(self._sent)
            skipped = len(alert_ids) - max(room, 0)
        if skipped > 0:
            self.left_pending += skipped
            log.warning("%d alerts left pending: %d notifications wait already", skipped, room)

    def _sent(self, future: Future[None]) -> None:
        with self._lock:
            self._queued.discard(future)

    def _send(self, alert_id: str) -> None:
        try:
            alert = alerts_store.alert(self.db, alert_id)
            if alert is None or alert.get("delivery") != "pending":
                return
            results = self.send(alert)
            sent = "sent" if self.settings.route == "pulse" else "sent to Prefect"
            state = sent if all(r.ok for r in results) else "failed"
            outcomes = [{"channel": r.channel, "ok": r.ok, "error": r.error} for r in results]
            alerts_store.record_delivery(self.db, alert_id, state, outcomes, datetime.now(UTC))
        except Exception:  # the notifier thread must outlive any failure; it is logged
            log.exception("could not deliver alert %s", alert_id)

    def send(self, alert: Document) -> list[Delivery]:
        """Log the alert and send it by the configured route (`notify`)."""
        title, body = message(alert)
        log.warning("ALERT %s: %s", title, body)
        return notify(alert, title, body, self.settings)

    def close(self) -> None:
        """Wait for the deliveries in flight, for CLOSE_WAIT_SECONDS at most; what is not
        sent by then stays `pending` for the next consumer."""
        with self._lock:
            queued = list(self._queued)
        wait(queued, timeout=CLOSE_WAIT_SECONDS)
        self._pool.shutdown(wait=False, cancel_futures=True)


def notify(alert: Document, title: str, body: str, settings: AlertSettings) -> list[Delivery]:
    """Emit the alert as a Prefect event, and send it to its channels, or leave that to
    Prefect's automations (PULSE_ALERTS_ROUTE=prefect)."""
    names = alert.get("channels", ["all"])
    channels = {
        name: url for name, url in settings.channels.items() if "all" in names or name in names
    }
    if settings.route == "prefect":
        emitted = emit_alert_event(alert, title, body, channels=list(channels))
        error = None if emitted else "no Prefect API to send the alert's event to"
        return [Delivery(f"{name} (by Prefect)", emitted, error) for name in channels]
    emit_alert_event(alert, title, body, channels=[])
    level = alert.get("severity", "info")
    return send(channels, title, body, level=level, timeout=settings.channel_timeout_seconds)


def message(alert: Document) -> tuple[str, str]:
    """An alert's notification: its title and body."""
    title = f"[{alert['severity']}] {alert['rule_id']}: {alert['key']} at {alert['value']:g}"
    metric = alert["metric"]
    if alert.get("interaction_type"):
        metric += f" ({alert['interaction_type']})"
    body = (
        f"{metric} of {alert['key']} reached {alert['value']:g} (threshold "
        f"{alert['threshold']:g}) in the window {alert['window_start']:%Y-%m-%d %H:%M}-"
        f"{alert['window_end']:%H:%M} UTC."
    )
    return title, body
