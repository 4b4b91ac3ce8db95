"""Alerts end to end: a hot item crosses a threshold in some windows; exactly one alert per
crossing window is stored and delivered to a real HTTP webhook, a channel that is down does not
stop the consumer, and replays add nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo.database import Database

from pulse.alerts.engine import Alerting
from pulse.alerts.evaluate import Decision, alert_id
from pulse.alerts.rules import load_rules_file
from pulse.config import Settings, load_settings
from pulse.generate.pacing import RatePlan
from pulse.generate.run import GeneratorRun
from pulse.generate.simulate import GeneratorConfig
from pulse.pipeline.consumer import replay_entry
from pulse.pipeline.opening import open_pipeline
from pulse.store.client import Document, database, mongo_client
from pulse.store.schema import ALERTS, LEDGER
from tests.integration.reconcile import drain_until_caught_up, run_pulse, subprocess_env

pytestmark = pytest.mark.integration

RULES = """
rules:
  - id: hot-item-test
    metric: item_interactions
    window_minutes: 1
    threshold: 500
    cooldown_minutes: 1
    severity: critical
    channels: [hook, down]
"""


def test_one_alert_per_crossing_window_delivered_once_despite_a_dead_channel(
    pipeline: Settings, webhook: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    url, received = webhook
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(RULES)
    settings = load_settings(
        kafka=pipeline.kafka.model_dump(),
        mongo=pipeline.mongo.model_dump(),
        alerts={
            "rules_file": rules_file,
            # A channel nobody listens on: its failure is recorded, nothing else happens.
            "channels": {"hook": url, "down": "json://127.0.0.1:9/alerts"},
            "channel_timeout_seconds": 2,
        },
    )
    # Eight bursts, each exactly one simulated minute (0.2 s x speed 300); every other burst
    # sends half its events to item 'hot1': windows 0, 2, 4 and 6 cross the threshold.
    origin = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=30)
    plan = RatePlan(batch_size=2_000, interval_seconds=0.2, speed_multiplier=300, bursts=8)
    config = GeneratorConfig(users=500, items=100, hot_item="hot1", hot_share=0.5, hot_every=2)
    with GeneratorRun(settings.kafka, plan, config, seed=9, now=origin) as run:
        for slot in run.slots():
            run.send(slot)
        run.finish()

    drain_until_caught_up(settings, max_batch_events=20_000)

    crossing = [origin + timedelta(minutes=m) for m in (0, 2, 4, 6)]
    expected = {alert_id("hot-item-test", "hot1", start) for start in crossing}
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        alerts = {doc["_id"]: doc for doc in db[ALERTS].find()}
        assert set(alerts) == expected
        for alert in alerts.values():
            assert alert["value"] >= 500
            assert alert["delivery"] == "failed"  # one of its two channels is down...
            outcome = {d["channel"].split(" ")[0]: d["ok"] for d in alert["deliveries"]}
            assert outcome == {"hook": True, "down": False}  # ...and the other got it
        # A later window replaces the firing one; the newest is still firing.
        states = {doc["window_start"]: doc["state"] for doc in alerts.values()}
        assert [states[start] for start in crossing] == ["resolved"] * 3 + ["firing"]
    assert sorted(payload["title"] for payload in received) == sorted(
        f"[critical] hot-item-test: hot1 at {alerts[i]['value']:g}" for i in expected
    )

    # Re-processing every batch fires nothing new and sends nothing again.
    with mongo_client(settings.mongo) as client:
        entries = list(database(client, settings.mongo)[LEDGER].find())
    with open_pipeline(settings) as opened:
        for entry in entries:
            replay_entry(opened, entry, settings.kafka.consumer_group)
    with mongo_client(settings.mongo) as client:
        assert database(client, settings.mongo)[ALERTS].count_documents({}) == 4
    assert len(received) == 4

    # New, ordinary traffic after the hot minutes lets the last alert resolve: its window is
    # long closed and the item fell back to nothing.
    plan = RatePlan(batch_size=500, interval_seconds=0, bursts=1)
    with GeneratorRun(settings.kafka, plan, GeneratorConfig(users=500, items=100), seed=10) as run:
        for slot in run.slots():
            run.send(slot)
        run.finish()
    drain_until_caught_up(settings, max_batch_events=20_000)
    with mongo_client(settings.mongo) as client:
        last = database(client, settings.mongo)[ALERTS].find_one(
            {"_id": alert_id("hot-item-test", "hot1", crossing[-1])}
        )
    assert last is not None and last["state"] == "resolved"
    assert last["resolved_because"] == "fell back"


def test_trying_the_channels_delivers_a_test_alert_and_reports_a_dead_one(
    pipeline: Settings, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, received = webhook
    channels = {"hook": url, "down": "json://127.0.0.1:9/alerts"}  # port 9: nothing listens
    env = subprocess_env(pipeline, PULSE_ALERTS_CHANNELS=orjson.dumps(channels).decode())
    tried = run_pulse("alerts", "test", env=env, timeout=60)
    assert tried.returncode == 1, tried.stdout + tried.stderr  # one channel failed
    assert "hook (json://127.0.0.1): delivered" in tried.stdout, tried.stdout
    assert "down (json://127.0.0.1): failed" in tried.stdout, tried.stdout
    # The pulse route (the default): sent by the command itself, through Apprise, at once.
    (notice,) = [n for n in received if n.get("title") == "Pulse test alert"]
    assert "apprise" in notice["_user_agent"].lower(), notice["_user_agent"]


def test_a_check_reports_as_new_only_the_alerts_it_created(
    mongo_db: Database[Document], live_stack: Settings, tmp_path: Path
) -> None:
    # One bulk write stores a check's decisions: an alert stored before sits between new ones,
    # where FerretDB numbers the upserts among themselves, not among the statements.
    rules_file = tmp_path / "alerts.yaml"
    rules_file.write_text(RULES)
    rule = load_rules_file(rules_file)[0]
    settings = live_stack.alerts.model_copy(update={"channels": {}})
    alerting = Alerting(mongo_db, settings, [rule])
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    windows = [now - timedelta(minutes=m) for m in (3, 2, 1)]
    try:
        assert alerting._store([Decision("fire", rule, "a", windows[1], 600.0)], now) == [
            alert_id(rule.id, "a", windows[1])
        ]
        decisions = [
            Decision("fire", rule, "b", windows[0], 600.0),
            Decision("fire", rule, "a", windows[1], 700.0),
            Decision("fire", rule, "c", windows[2], 600.0),
        ]
        created = alerting._store(decisions, now)
    finally:
        alerting.close()
    assert created == [alert_id(rule.id, "b", windows[0]), alert_id(rule.id, "c", windows[2])]
    stored = mongo_db[ALERTS].find_one({"_id": alert_id(rule.id, "a", windows[1])})
    assert stored is not None and stored["value"] == 700.0
