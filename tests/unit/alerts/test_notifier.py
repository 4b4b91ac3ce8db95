"""The notifier sends alerts on a thread of its own, with a bounded queue."""

from __future__ import annotations

import threading
from typing import cast

import pytest
from pymongo.database import Database

from pulse.alerts.notifier import MAX_QUEUED_NOTIFICATIONS, Notifier
from pulse.config import AlertSettings
from pulse.store.client import Document
from tests.fakes import MemoryDatabase


def test_notifications_wait_in_a_bounded_queue(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    sent: list[str] = []

    def send(self: Notifier, alert_id: str) -> None:
        release.wait(timeout=30)
        sent.append(alert_id)

    monkeypatch.setattr(Notifier, "_send", send)
    notifier = Notifier(cast("Database[Document]", MemoryDatabase()), AlertSettings())
    ids = [f"a{n}" for n in range(MAX_QUEUED_NOTIFICATIONS + 50)]
    notifier.deliver(ids)
    assert notifier.left_pending == 50  # stay 'pending' in MongoDB for the next consumer
    release.set()
    notifier.close()
    assert sorted(sent) == sorted(ids[:MAX_QUEUED_NOTIFICATIONS])
