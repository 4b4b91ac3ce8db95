"""`pulse maintain` on FerretDB/MongoDB: killed mid-pass and run again, what it keeps still
reconciles exactly with what a plain producer sent."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import orjson
from confluent_kafka import Producer

from pulse.config import Settings
from pulse.store import reads
from pulse.store.client import database, mongo_client
from pulse.store.schema import (
    DEAD_LETTERS,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEDGER,
    MAINTENANCE,
    MINUTES,
    TOTALS,
    TOTALS_ID,
    minute_id,
)
from tests.integration.reconcile import (
    assert_periods_match,
    drain_until_caught_up,
    run_pulse,
    subprocess_env,
)
from tests.waiting import wait_until

EVENTS = 12_000
HOURS = 72
"""Event times spread over the last three days: two of them past the minute retention."""
ITEMS = 150


def _produce(settings: Settings) -> tuple[Counter[str], Counter[str], int]:
    """Four-field events and a few non-JSON records; the events per minute and per item."""
    rng = np.random.default_rng(29)
    now_ms = int(time.time() * 1000)
    stamps = now_ms - rng.integers(0, HOURS * 3_600_000, EVENTS)
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "linger.ms": 20})
    by_minute: Counter[str] = Counter()
    by_item: Counter[str] = Counter()
    for n, ms in enumerate(stamps.tolist()):
        item = f"i{n % ITEMS}"
        event = {"user_id": f"u{n % 500}", "item_id": item, "interaction_type": "view"}
        producer.produce(settings.kafka.topic, orjson.dumps(event | {"timestamp": ms}))
        by_minute[minute_id(datetime.fromtimestamp(ms / 1000, UTC))] += 1
        by_item[item] += 1
        producer.poll(0)
    bad = 30
    for _ in range(bad):
        producer.produce(settings.kafka.topic, b"not json")
    assert producer.flush(30) == 0
    return by_minute, by_item, bad


def test_maintain_killed_mid_pass_and_rerun_keeps_exact_figures(
    pipeline: Settings, tmp_path: Path
) -> None:
    by_minute, by_item, bad = _produce(pipeline)
    drain_until_caught_up(pipeline)
    # Detail was written for two days (the default); the pass keeps one.
    env = subprocess_env(
        pipeline, PULSE_RETENTION_LEDGER_HOURS="0.0001", PULSE_RETENTION_MINUTE_DAYS="1"
    )
    client = mongo_client(pipeline.mongo)
    db = database(client, pipeline.mongo)
    assert db[ITEM_MINUTES].count_documents({}) > 0

    # Killed once the item x minute pruning is under way, then run again to the end.
    killed = subprocess.Popen(
        [sys.executable, "-m", "pulse.cli.main", "maintain"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: db[MAINTENANCE].find_one({"_id": ITEM_MINUTES}),
            timeout=120,
            what="item x minute pruning started",
            every=0.01,
        )
        assert killed.poll() is None, "the pass ended before it could be killed"
        killed.send_signal(signal.SIGKILL)
    finally:
        killed.wait(30)
    before = datetime.now(UTC)
    rerun = run_pulse("maintain", env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert ITEM_MINUTES in rerun.stdout

    # What is kept is exact: hours and days whole, minutes and item x minute since the cutoff.
    cutoff = minute_id(before - timedelta(days=1))
    totals = db[TOTALS].find_one({"_id": TOTALS_ID}) or {}
    assert totals["events"] == EVENTS and totals["dead_lettered"] == bad
    assert_periods_match(db, {minute: {"view": n} for minute, n in by_minute.items()})
    minutes = {doc["_id"]: doc["total"] for doc in db[MINUTES].find({}, {"total": 1})}
    assert min(minutes) >= cutoff
    assert minutes == {minute: n for minute, n in by_minute.items() if minute >= min(minutes)}
    items = reads.item_totals(db)
    assert items == dict(by_item)
    hourly: Counter[str] = Counter()
    for doc in db[ITEM_HOURS].find({}, {"i": 1}):
        hourly.update(doc["i"])
    assert hourly == by_item  # item x hour, kept 90 days: whole
    kept = list(db[ITEM_MINUTES].find({}, {"i": 1, "minute": 1}))
    kept_minutes = {minute_id(doc["minute"]) for doc in kept}
    assert min(kept_minutes) >= cutoff
    recent = sum(n for minute, n in by_minute.items() if minute >= min(kept_minutes))
    assert sum(figures["total"] for doc in kept for figures in doc["i"].values()) == recent
    assert sum(n for minute, n in by_minute.items() if minute < cutoff) > EVENTS / 2

    # Finished ledger entries past their (tiny) retention are gone; counts by field stay.
    ledger_cutoff = minute_id(before)
    assert all(minute_id(doc["started_at"]) >= ledger_cutoff for doc in db[LEDGER].find())
    assert db[DEAD_LETTERS].count_documents({}) == bad  # kept 7 days
    reasons = reads.dead_letter_reasons(db)
    assert dict(reasons.iter_rows()) == {"(whole record)": bad}
    client.close()
