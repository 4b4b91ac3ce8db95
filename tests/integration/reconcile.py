"""Helpers that produce known events and compare MongoDB with what was sent."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from pymongo.database import Database

from pulse.config import Settings, env_name
from pulse.generate.pacing import RatePlan
from pulse.generate.run import GeneratorRun, RunSummary
from pulse.generate.simulate import GeneratorConfig
from pulse.ingest import sketches
from pulse.pipeline.consumer import consuming
from pulse.pipeline.drain import DrainSummary, drain
from pulse.store import reads
from pulse.store.client import Document
from pulse.store.leaders import LOW_CAP, low_doc_id
from pulse.store.schema import (
    DAY,
    DAY_SKETCHES,
    DEAD_LETTERS,
    HOUR,
    ITEM_BUCKETS,
    ITEM_HOURS,
    ITEM_MINUTES,
    LEADERS,
    LEDGER,
    MINUTE_SKETCHES,
    MINUTES,
    OFFSETS,
    PERIODS,
    TOTALS,
    TOTALS_ID,
    USER_BUCKETS,
    Entity,
    item_hour_id,
    item_minute_id,
    minute_of_id,
    parse_minute_id,
    period_id,
)
from pulse.store.statements import activity_bin
from tests.waiting import wait_until


def produce(
    settings: Settings,
    truth_path: Path,
    *,
    events: int,
    users: int = 400,
    items: int = 80,
    malformed: float = 0.01,
    late: float = 0.05,
    seed: int = 5,
) -> tuple[RunSummary, dict[str, Any]]:
    """Send `events` records (some malformed and late) and return the ground truth."""
    plan = RatePlan(batch_size=10_000, interval_seconds=0, events=events)
    config = GeneratorConfig(
        users=users, items=items, malformed_fraction=malformed, late_fraction=late
    )
    with GeneratorRun(settings.kafka, plan, config, seed=seed, ground_truth_path=truth_path) as run:
        for slot in run.slots():
            run.send(slot)
        summary = run.finish()
    assert summary.undelivered == summary.failed == 0
    return summary, orjson.loads(truth_path.read_bytes())


def drain_until_caught_up(
    settings: Settings,
    *,
    max_batch_events: int = 10_000,
    max_batch_wait: float = 2.0,
    budget_seconds: float = 300.0,
) -> DrainSummary:
    """Aggregate everything in the topic with one consumer, as `pulse consume` does."""
    with consuming(settings) as consumer:
        summary = drain(
            consumer,
            consumer.process,
            time_budget=budget_seconds,
            max_batch_events=max_batch_events,
            max_batch_wait=max_batch_wait,
        )
    assert summary.caught_up, f"not caught up in {budget_seconds:.0f} s: lag {summary.lag}"
    return summary


def wait_for_events(db: Database[Document], events: int, timeout: float = 240) -> None:
    """Until the global document counts `events` (consumers running elsewhere)."""
    wait_until(
        lambda: (db[TOTALS].find_one({"_id": TOTALS_ID}) or {}).get("events", 0),
        timeout=timeout,
        what=f"{events} events counted",
        done=lambda counted: counted >= events,
    )


def assert_matches_truth(db: Database[Document], truth: dict[str, Any]) -> None:
    """Every figure in MongoDB equals the ground truth, exactly."""
    totals = db[TOTALS].find_one({"_id": TOTALS_ID})
    assert totals is not None
    assert totals["events"] == truth["events"]
    assert totals["dead_lettered"] == truth["malformed"]
    assert totals["types"] == truth["by_type"]
    assert totals["users"] == len(truth["by_user"])
    assert totals["items"] == len(truth["by_item"])

    assert reads.user_totals(db) == truth["by_user"]
    histogram = Counter(activity_bin(total) for total in truth["by_user"].values())
    assert {k: v for k, v in totals.get("user_bins", {}).items() if v} == dict(histogram)
    items = reads.item_totals(db)
    assert items == truth["by_item"]
    minutes = {doc["_id"]: doc["types"] for doc in db[MINUTES].find({}, {"types": 1})}
    assert minutes == truth["by_minute"]
    assert_periods_match(db, truth["by_minute"])
    # Every item sits in the bucket the readers (item chart, alerts, retention) look in.
    buckets = reads.item_bucket_count(db)
    by_item: Counter[str] = Counter()
    for doc in db[ITEM_MINUTES].find({}, {"i": 1}):
        for item, figures in doc["i"].items():
            assert item_minute_id(item, minute_of_id(doc["_id"]), buckets) == doc["_id"], item
            by_item[item] += figures["total"]
    assert by_item == truth["by_item"]
    by_item.clear()
    for doc in db[ITEM_HOURS].find({}, {"i": 1, "hour": 1}):
        for item, total in doc["i"].items():
            assert item_hour_id(item, doc["hour"], buckets) == doc["_id"], item
            by_item[item] += total
    assert by_item == truth["by_item"]
    merged = {doc["_id"]: doc for doc in db[MINUTE_SKETCHES].find()}
    assert set(merged) == set(truth["by_minute"])
    for doc in db[MINUTES].find():
        sketch = merged[doc["_id"]]
        assert sketches.estimate(sketch["users_hll"]) <= len(truth["by_user"]) * 1.1
        # What the dashboard reads: the estimates of the fully merged sketches.
        assert doc["active_users"] == round(sketches.estimate(sketch["users_hll"]))
        assert doc["active_items"] == round(sketches.estimate(sketch["items_hll"]))
    # Each day's sketch is exactly the union of its minutes' (DAU, WAU and MAU read these).
    by_day: dict[str, list[dict[str, int]]] = {}
    for minute, doc in merged.items():
        by_day.setdefault(minute[:10], []).append(doc["users_hll"])
    days = {doc["_id"]: doc["users_hll"] for doc in db[DAY_SKETCHES].find()}
    assert {day: sketches.union(group) for day, group in by_day.items()} == days

    assert_leaders_match(db, truth)

    assert db[DEAD_LETTERS].count_documents({}) == truth["malformed"]
    unfinished = list(db[LEDGER].find({"status": {"$ne": "applied"}}))
    assert unfinished == [], f"ledger entries left unfinished: {unfinished}"


def assert_periods_match(db: Database[Document], by_minute: dict[str, dict[str, int]]) -> None:
    """Every hour and day holds the sum of its minutes, by type."""
    expected: dict[str, Counter[str]] = {}
    for minute, types in by_minute.items():
        start = parse_minute_id(minute)
        for period in (HOUR, DAY):
            expected.setdefault(period_id(period, start), Counter()).update(types)
    periods = {doc["_id"]: doc["types"] for doc in db[PERIODS].find({}, {"types": 1})}
    assert periods == {doc_id: dict(types) for doc_id, types in expected.items()}


def assert_leaders_match(db: Database[Document], truth: dict[str, Any]) -> None:
    """The dashboard's most and least active lists, read through the leader boards, hold the
    true extremes; every low item is on the board."""
    by_item, by_user = truth["by_item"], truth["by_user"]
    for entity, key, counts in (
        (Entity.ITEMS, "item_id", by_item),
        (Entity.USERS, "user_id", by_user),
    ):
        n = min(10, len(counts))
        top = reads.ranked(db, entity, key, n)
        assert top["total"].to_list() == sorted(counts.values(), reverse=True)[:n]
        assert all(counts[name] == total for name, total in top.select(key, "total").iter_rows())
    bottom = reads.ranked(db, Entity.ITEMS, "item_id", min(10, len(by_item)), lowest=True)
    assert bottom["total"].to_list() == sorted(by_item.values())[: bottom.height]
    for item, total in by_item.items():
        if total <= LOW_CAP:
            listed = db[LEADERS].find_one({"_id": low_doc_id(Entity.ITEMS, total, item)}) or {}
            assert listed.get("ids", {}).get(item) == total, item


def snapshot(db: Database[Document]) -> dict[str, list[Document]]:
    """All aggregate documents, minus fields that record when they were written."""
    collections = (
        USER_BUCKETS,
        ITEM_BUCKETS,
        MINUTES,
        PERIODS,
        ITEM_MINUTES,
        ITEM_HOURS,
        TOTALS,
        DEAD_LETTERS,
        OFFSETS,
        LEADERS,
    )
    return {
        name: sorted(
            ({k: v for k, v in doc.items() if k != "applied_at"} for doc in db[name].find()),
            key=lambda doc: str(doc["_id"]),
        )
        for name in collections
    }


def subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    """Environment that points a `pulse` child process at the same isolated pipeline."""
    values = {
        ("kafka", "topic"): settings.kafka.topic,
        ("kafka", "consumer_group"): settings.kafka.consumer_group,
        ("mongo", "database"): settings.mongo.database,
    }
    env = {**os.environ, **{env_name(key): value for key, value in values.items()}}
    return env | extra


def run_pulse(
    *arguments: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`pulse <arguments>` as a child process, from the repository, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "pulse.cli.main", *arguments],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def use_settings_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> None:
    """Point code in this process that loads its own settings (flows, the dashboard) at the
    same isolated pipeline, for the current test only."""
    for name, value in subprocess_env(settings).items():
        if name.startswith("PULSE_"):
            monkeypatch.setenv(name, value)
