"""The alert engine after each batch, against the in-memory database: fire once per window,
nothing new on a replayed batch, resolve once the window has closed below the threshold."""

from __future__ import annotations

from typing import Any, cast

import orjson
import pytest
from pydantic import SecretStr
from pymongo.database import Database

from pulse.alerts import engine
from pulse.alerts.channels import Delivery
from pulse.alerts.engine import Alerting
from pulse.alerts.rules import AlertRule
from pulse.config import AlertSettings
from pulse.ingest.batch import MicroBatch
from pulse.ingest.validate import ValidationRules
from pulse.pipeline.apply import BatchWriter
from pulse.store.client import Document
from pulse.store.schema import ALERTS, USER_MINUTES
from tests.fakes import MemoryDatabase, apply_now

TYPES = ("view", "click", "add_to_cart", "purchase")
RULES = ValidationRules(
    interaction_types=TYPES, max_record_bytes=1_024, max_age_ms=3_600_000, max_lead_ms=60_000
)
KAFKA_TS = 1_795_737_600_000  # on a minute boundary
BUSY = AlertRule(id="busy", metric="user_interactions", threshold=5, severity="info")


def _batch(partition: int, first: int, users: list[str]) -> MicroBatch:
    values = [
        orjson.dumps(
            {"user_id": u, "item_id": "i1", "interaction_type": "view", "timestamp": KAFKA_TS + n}
        )
        for n, u in enumerate(users)
    ]
    n = len(values)
    offsets = list(range(first, first + n))
    return MicroBatch.from_columns(
        "t", [partition] * n, offsets, [KAFKA_TS] * n, [b"k"] * n, values
    )


def test_a_user_rule_fires_once_and_resolves_after_its_window_closed() -> None:
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    alerting = Alerting(db, AlertSettings(), [BUSY])
    writer = BatchWriter(db, "t", RULES, alerting=alerting)
    # A user's records share a key, hence a partition; other users are on other partitions.
    apply_now(writer, _batch(0, 0, ["u1"] * 3 + ["u2"]))
    apply_now(writer, _batch(7, 0, ["u4"] * 2))
    assert memory[ALERTS].count_documents({}) == 0
    second = _batch(0, 4, ["u1"] * 3)
    apply_now(writer, second)
    apply_now(writer, second)  # a replayed batch fires nothing new
    alerting.close()

    (alert,) = memory[ALERTS].find()
    assert (alert["rule_id"], alert["key"], alert["value"]) == ("busy", "u1", 6.0)
    assert memory[USER_MINUTES].count_documents({}) == 2  # one per minute and partition
    # The engine runs after later batches with the wall clock as "now": u1's minute has long
    # closed, and the latest closed minute holds nothing of u1, so the alert resolves.
    later = Alerting(db, AlertSettings(), [BUSY])
    apply_now(BatchWriter(db, "t", RULES, alerting=later), _batch(3, 0, ["u3"]))
    later.close()
    (alert,) = memory[ALERTS].find()
    assert alert["state"] == "resolved"


@pytest.mark.parametrize("route", ["pulse", "prefect"])
def test_an_alert_is_sent_by_one_route_only(route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the prefect route, the event names the alert's channels for the automations and
    the consumer sends nothing itself; with the pulse route, the reverse."""
    events: list[list[str]] = []
    sent: list[list[str]] = []

    def emit(alert: Document, title: str, body: str, *, channels: list[str]) -> bool:
        events.append(channels)
        return True

    def send(channels: dict[str, SecretStr], *args: Any, **kwargs: Any) -> list[Delivery]:
        sent.append(list(channels))
        return [Delivery(f"{name} (json://)", ok=True) for name in channels]

    monkeypatch.setattr(engine, "_emit_prefect_event", emit)
    monkeypatch.setattr(engine, "send", send)
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    settings = AlertSettings.model_validate(
        {"route": route, "channels": {"ops": "json://hooks.example/pulse"}}
    )
    alerting = Alerting(db, settings, [BUSY])
    apply_now(BatchWriter(db, "t", RULES, alerting=alerting), _batch(0, 0, ["u1"] * 6))
    alerting.close()

    (alert,) = memory[ALERTS].find()
    if route == "prefect":
        assert (events, sent) == ([["ops"]], [])
        assert alert["delivery"] == "sent to Prefect"
        assert alert["deliveries"] == [{"channel": "ops (by Prefect)", "ok": True, "error": None}]
    else:
        assert (events, sent) == ([[]], [["ops"]])
        assert alert["delivery"] == "sent"
