"""The alert engine after each batch, against the in-memory database: fire once per window,
nothing new on a replayed batch, resolve once the window has closed below the threshold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

import orjson
import pytest
from pydantic import SecretStr
from pymongo.database import Database

from pulse.alerts import notifier
from pulse.alerts.channels import Delivery
from pulse.alerts.engine import Alerting
from pulse.alerts.rules import AlertRule
from pulse.config import AlertSettings
from pulse.ingest.batch import MicroBatch
from pulse.ingest.validate import ValidationRules
from pulse.pipeline.apply import BatchWriter
from pulse.store import reads
from pulse.store.client import Document
from pulse.store.schema import ALERT_RULES, ALERTS, USER_MINUTES
from tests.fakes import MemoryDatabase, apply_now

TYPES = ("view", "click", "add_to_cart", "purchase")
RULES = ValidationRules(
    interaction_types=TYPES, max_record_bytes=1_024, max_age_ms=3_600_000, max_lead_ms=60_000
)
KAFKA_TS = 1_795_737_600_000  # on a minute boundary
"""The events here are of 2026-11-27: their per-minute detail is written whatever today is."""
BUSY = AlertRule(id="busy", metric="user_interactions", threshold=5, severity="info")


def _batch(partition: int, first: int, users: list[str], later_ms: int = 0) -> MicroBatch:
    stamp = KAFKA_TS + later_ms
    values = [
        orjson.dumps(
            {"user_id": u, "item_id": "i1", "interaction_type": "view", "timestamp": stamp + n}
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
    # Windows close by event time. A flush still in u1's minute (counting lags the clock by
    # days here) resolves nothing; one three minutes later closes the minute after it, which
    # holds nothing of u1, so the alert resolves.
    later = Alerting(db, AlertSettings(), [BUSY])
    apply_now(
        BatchWriter(db, "t", RULES, alerting=later),
        _batch(3, 0, ["u3"], later_ms=30_000),
    )
    (alert,) = memory[ALERTS].find()
    assert alert["state"] == "firing"
    apply_now(
        BatchWriter(db, "t", RULES, alerting=later),
        _batch(3, 1, ["u3"], later_ms=180_000),
    )
    later.close()
    (alert,) = memory[ALERTS].find()
    assert alert["state"] == "resolved" and alert["resolved_because"] == "fell back"


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

    monkeypatch.setattr(notifier, "emit_alert_event", emit)
    monkeypatch.setattr(notifier, "send", send)
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    settings = AlertSettings.model_validate(
        {"route": route, "channels": {"ops": "json://hooks.example/pulse"}}
    )
    alerting = Alerting(db, settings, [BUSY])
    apply_now(
        BatchWriter(db, "t", RULES, alerting=alerting),
        _batch(0, 0, ["u1"] * 6),
    )
    alerting.close()

    (alert,) = memory[ALERTS].find()
    if route == "prefect":
        assert (events, sent) == ([["ops"]], [])
        assert alert["delivery"] == "sent to Prefect"
        assert alert["deliveries"] == [{"channel": "ops (by Prefect)", "ok": True, "error": None}]
    else:
        assert (events, sent) == ([[]], [["ops"]])
        assert alert["delivery"] == "sent"


def test_a_stored_rule_that_does_not_validate_is_skipped_and_recorded() -> None:
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    memory[ALERT_RULES].insert_one({"_id": 17, "metric": "item_interactions", "threshold": 1})
    memory[ALERT_RULES].insert_one(
        {"_id": "day", "metric": "item_interactions", "threshold": 1, "window_minutes": 1_440}
    )
    memory[ALERT_RULES].insert_one({"_id": "ok", "metric": "item_interactions", "threshold": 9})
    alerting = Alerting(db, AlertSettings(), [BUSY])
    assert set(alerting.rules()) == {"busy", "ok"}
    rejected = reads.rule_rejections(db)
    assert rejected["rule"].to_list() == ["17", "day"]
    assert "id: Input should be a valid string" in rejected["reason"][0]
    assert "window_minutes" in rejected["reason"][1]
    alerting.close()

    memory[ALERT_RULES].delete_one({"_id": 17})
    memory[ALERT_RULES].update_one({"_id": "day"}, {"$set": {"window_minutes": 60}})
    fixed = Alerting(db, AlertSettings(), [])
    assert set(fixed.rules()) == {"day", "ok"}
    assert reads.rule_rejections(db).height == 0
    fixed.close()


def test_a_rule_whose_window_needs_minutes_past_their_retention_is_skipped() -> None:
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    memory[ALERT_RULES].insert_one(
        {"_id": "hour", "metric": "item_interactions", "threshold": 1, "window_minutes": 60}
    )
    # Kept 90 minutes: a 1-minute window is covered, an hour's (read up to 2 h back) is not.
    alerting = Alerting(db, AlertSettings(), [BUSY], minutes_kept=timedelta(minutes=90))
    assert set(alerting.rules()) == {"busy"}
    (reason,) = reads.rule_rejections(db)["reason"].to_list()
    assert reason == (
        "rule 'hour': window_minutes 60 needs minutes kept 120 min; "
        "PULSE_RETENTION_MINUTE_DAYS keeps them 90 min"
    )
    alerting.close()


def test_many_alerts_firing_at_once_all_resolve_once_their_window_closed() -> None:
    """A backlog can leave thousands of (rule, key) firing; each rule's closed window is read
    for all its keys at once, past the projection limit, and resolves every one of them."""
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    hot = AlertRule(id="hot", metric="item_interactions", threshold=5, severity="warning")
    alerting = Alerting(db, AlertSettings(), [BUSY, hot])
    keys = range(30)  # more than reads._PROJECTED_PATHS
    values = [
        orjson.dumps(
            {"user_id": f"u{k}", "item_id": f"i{k}", "interaction_type": "view", "timestamp": t}
        )
        for k in keys
        for t in range(KAFKA_TS, KAFKA_TS + 6)
    ]
    n = len(values)
    burst = MicroBatch.from_columns(
        "t", [0] * n, list(range(n)), [KAFKA_TS] * n, [b"k"] * n, values
    )
    apply_now(BatchWriter(db, "t", RULES, alerting=alerting), burst)
    firing = {(a["rule_id"], a["key"]) for a in memory[ALERTS].find({"state": "firing"})}
    assert firing == {("busy", f"u{k}") for k in keys} | {("hot", f"i{k}") for k in keys}

    # Three minutes later the burst's minute has closed, and a quiet one after it.
    apply_now(
        BatchWriter(db, "t", RULES, alerting=alerting),
        _batch(0, n, ["quiet"], later_ms=180_000),
    )
    alerting.close()
    states = {(a["rule_id"], a["key"]): a["state"] for a in memory[ALERTS].find()}
    assert set(states) == firing
    assert set(states.values()) == {"resolved"}, states


SURGE = AlertRule(
    id="surge",
    metric="item_interactions",
    threshold=20,
    baseline_windows=5,
    ratio=3,
    cooldown_minutes=5,
)


def _minute_of_item(first: int, minute: int, events: int) -> MicroBatch:
    """`events` views of i1 in minute `minute` after KAFKA_TS, offsets from `first`."""
    stamp = KAFKA_TS + minute * 60_000
    values = [
        orjson.dumps(
            {
                "user_id": f"u{n}",
                "item_id": "i1",
                "interaction_type": "view",
                "timestamp": stamp + n,
            }
        )
        for n in range(events)
    ]
    offsets = list(range(first, first + events))
    return MicroBatch.from_columns(
        "t", [0] * events, offsets, [stamp] * events, [b"k"] * events, values
    )


def test_an_anomaly_rule_fires_at_ratio_times_the_items_usual_count_and_resolves_after() -> None:
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    alerting = Alerting(db, AlertSettings(), [SURGE])
    writer = BatchWriter(db, "t", RULES, alerting=alerting)
    offset = 0
    # Six steady minutes of 25: above the minimum volume, but no surge.
    for minute in range(6):
        apply_now(writer, _minute_of_item(offset, minute, 25))
        offset += 25
    assert memory[ALERTS].count_documents({}) == 0
    # 100 in minute 6: four times its usual, and the flush that counts it fires.
    apply_now(writer, _minute_of_item(offset, 6, 100))
    offset += 100
    (alert,) = memory[ALERTS].find()
    assert (alert["rule_id"], alert["key"], alert["value"], alert["state"]) == (
        "surge",
        "i1",
        100.0,
        "firing",
    )
    # Back to 25 in minute 7; once minute 7 has closed (an event at minute 9), it resolves.
    apply_now(writer, _minute_of_item(offset, 7, 25))
    offset += 25
    apply_now(writer, _minute_of_item(offset, 9, 1))
    alerting.close()
    (alert,) = memory[ALERTS].find()
    assert alert["state"] == "resolved"
    assert alert["resolved_because"] == "fell back"


LOW_CONVERSION = AlertRule(
    id="low-conversion",
    metric="item_conversion",
    conversion=("view", "purchase"),
    window_minutes=5,
    threshold=0.05,
    min_events=50,
)


def _events(first: int, minute: int, counts: dict[tuple[str, str], int]) -> MicroBatch:
    """(item, type) -> that many events in minute `minute` after KAFKA_TS, from offset `first`."""
    stamp = KAFKA_TS + minute * 60_000
    values = [
        orjson.dumps(
            {"user_id": f"u{n}", "item_id": item, "interaction_type": kind, "timestamp": stamp + n}
        )
        for (item, kind), many in counts.items()
        for n in range(many)
    ]
    n = len(values)
    return MicroBatch.from_columns(
        "t", [0] * n, list(range(first, first + n)), [stamp] * n, [b"k"] * n, values
    )


def test_a_conversion_floor_judges_each_closed_window_once_over_every_item_in_it() -> None:
    memory = MemoryDatabase()
    db = cast("Database[Document]", memory)
    alerting = Alerting(db, AlertSettings(), [LOW_CONVERSION])
    writer = BatchWriter(db, "t", RULES, alerting=alerting)
    # Window 0-5: i1 converts 2%, i2 10%, i3 0% on too few views to judge.
    window = {
        ("i1", "view"): 100,
        ("i1", "purchase"): 2,
        ("i2", "view"): 100,
        ("i2", "purchase"): 10,
        ("i3", "view"): 10,
    }
    first = _events(0, 1, window)
    apply_now(writer, first)
    assert memory[ALERTS].count_documents({}) == 0  # the window is still open
    closing = _events(first.size, 7, {("i2", "view"): 1})
    apply_now(writer, closing)
    apply_now(writer, closing)  # a replay judges nothing again
    (alert,) = memory[ALERTS].find()
    assert (alert["rule_id"], alert["key"], alert["value"]) == ("low-conversion", "i1", 0.02)
    # Window 5-10: i1 converts 10%; judged once window 5-10 has closed, it resolves.
    recovered = _events(first.size + 1, 8, {("i1", "view"): 60, ("i1", "purchase"): 6})
    apply_now(writer, recovered)
    apply_now(writer, _events(first.size + 1 + recovered.size, 12, {("i2", "view"): 1}))
    alerting.close()
    (alert,) = memory[ALERTS].find()
    assert (alert["state"], alert["resolved_because"]) == ("resolved", "recovered")
