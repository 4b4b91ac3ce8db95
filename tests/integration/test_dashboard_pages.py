"""Each dashboard page rendered with Streamlit's AppTest on seeded data, an empty database and
an unreachable one. The numbers shown must be the numbers MongoDB holds."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from pulse.config import Settings
from pulse.kafka.lag import LagReader
from pulse.store import reads, session_figures, writes
from pulse.store.client import database, mongo_client
from pulse.store.schema import ALERTS, DEAD_LETTERS, TOTALS, TOTALS_ID
from tests.integration.reconcile import (
    drain_until_caught_up,
    produce,
    use_settings_env,
)

pytestmark = pytest.mark.integration

APP = str(Path(__file__).resolve().parents[2] / "streamlit_app" / "app.py")
PAGES = [
    "views/overview.py",
    "views/items.py",
    "views/users.py",
    "views/funnel.py",
    "views/sessions.py",
    "views/alerts.py",
    "views/health.py",
]


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    st.cache_data.clear()
    st.cache_resource.clear()
    yield
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def seeded(pipeline: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The isolated pipeline with 8,000 events aggregated, and the app pointed at it."""
    produce(pipeline, tmp_path / "truth.json", events=8_000, users=300, items=60)
    drain_until_caught_up(pipeline)
    use_settings_env(monkeypatch, pipeline)
    return pipeline


def _page(path: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    if path != PAGES[0]:
        at.switch_page(path)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metrics(at: AppTest) -> dict[str, str]:
    return {metric.label: metric.value for metric in at.metric}


def test_overview_shows_what_mongodb_holds(seeded: Settings) -> None:
    at = _page("views/overview.py")
    with mongo_client(seeded.mongo) as client:
        totals = database(client, seeded.mongo)[TOTALS].find_one({"_id": TOTALS_ID})
    assert totals is not None
    metrics = _metrics(at)
    assert metrics["Total interactions"] == f"{totals['events']:,}"
    assert metrics["Distinct users"] == f"{totals['users']:,}"
    assert metrics["Avg interactions / user"] == f"{totals['events'] / totals['users']:,.2f}"
    assert metrics["Dead-lettered"] == f"{totals['dead_lettered']:,}"
    assert metrics["Pipeline lag"] == "0.0 s"  # everything in Kafka is counted
    assert metrics["Last event"].endswith(" s ago")
    charts = at.get("plotly_chart")
    assert len(charts) == 2


def test_items_page_ranks_items_by_interactions(seeded: Settings) -> None:
    at = _page("views/items.py")
    with mongo_client(seeded.mongo) as client:
        totals = reads.item_totals(database(client, seeded.mongo))
        top = sorted(totals, key=lambda item: (-totals[item], item))[:10]
    table = at.dataframe[1].value  # after the rising items
    assert list(table["item_id"]) == top
    charts = {
        json.loads(chart.proto.spec)["layout"]["title"]["text"]: json.loads(chart.proto.spec)
        for chart in at.get("plotly_chart")
    }
    assert len(charts) == 3
    # Every event is minutes old: the last 15 minutes' busiest items are the busiest of all.
    trending = charts["Trending: top 10 items, last 15 minutes"]["data"][0]
    assert list(zip(trending["y"], trending["x"], strict=True)) == [(i, totals[i]) for i in top]
    assert at.caption[0].value.startswith("Exact")

    at.text_input(key="item_lookup").input(top[0]).run()
    assert not at.exception
    total = int(table["total"][0])
    assert _metrics(at)["Interactions"] == f"{total:,}"
    # The events are minutes old: the last hour's trend, per minute, and the last week's, per
    # hour (item x hour buckets), each hold all of them.
    for window, period in (("1h", "minute"), ("7d", "hour")):
        at.selectbox(key="range").set_value(window).run()
        assert not at.exception
        spec = json.loads(at.get("plotly_chart")[-1].proto.spec)
        assert spec["layout"]["title"]["text"] == f"{top[0]}: interactions per {period}"
        assert sum(y for y in spec["data"][0]["y"] if y) == total, window


def test_users_page_histogram_counts_every_user(seeded: Settings) -> None:
    at = _page("views/users.py")
    with mongo_client(seeded.mongo) as client:
        db = database(client, seeded.mongo)
        totals = reads.user_totals(db)
        users = len(totals)
        busiest = max(totals, key=lambda user: totals[user])
    assert _metrics(at)["Distinct users"] == f"{users:,}"
    histogram = at.get("plotly_chart")[0]
    bars = json.loads(histogram.proto.spec)["data"][0]["y"]
    assert sum(bars) == users
    at.text_input(key="user_lookup").input(busiest).run()
    assert _metrics(at)["Interactions"] == f"{totals[busiest]:,}"
    assert _metrics(at)["Sessions"] == "1"  # its events came within seconds


def test_sessions_page_shows_the_sessions_mongodb_holds(seeded: Settings) -> None:
    at = _page("views/sessions.py")
    with mongo_client(seeded.mongo) as client:
        db = database(client, seeded.mongo)
        overall = session_figures.all_sessions(db)
        users = len(reads.user_totals(db))
    # The generator sent every user's events within seconds: one session each, all still open.
    assert overall.started == users
    metrics = _metrics(at)
    assert metrics["Started"] == metrics["Open now"] == f"{users:,}"
    assert metrics["Ended"] == "0" and metrics["Bounce rate"] == "n/a"
    titles = [
        json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")
    ]
    assert titles[0] == "Sessions started and ended per minute (last hour)"
    started = json.loads(at.get("plotly_chart")[0].proto.spec)["data"][0]["y"]
    assert sum(y for y in started if y) == users


def test_a_lookup_of_text_that_is_no_id_says_so(seeded: Settings) -> None:
    at = _page("views/users.py")
    for typed in ("$x", "u.1", "a b"):
        at.text_input(key="user_lookup").input(typed).run()
        assert not at.exception
        (warning,) = [w.value for w in at.warning]
        assert f"{typed!r} is not an id" in warning  # not "MongoDB is unreachable"


def test_health_page_shows_batches_and_dead_letters(seeded: Settings) -> None:
    at = _page("views/health.py")
    metrics = _metrics(at)
    assert metrics["Pipeline lag"] == "0.0 s"
    assert int(metrics["Batches in range"]) >= 1
    assert metrics["Unfinished or failed"] == "0"
    with mongo_client(seeded.mongo) as client:
        dead = database(client, seeded.mongo)[DEAD_LETTERS].count_documents({})
    assert metrics["Dead letters"] == f"{dead:,}"


def test_alerts_page_lists_firing_and_recent_alerts(seeded: Settings) -> None:
    now = datetime.now(UTC)
    with mongo_client(seeded.mongo) as client:
        db = database(client, seeded.mongo)
        writes.file_in_timeline(db, ALERTS, now, ["a1", "a2"])  # as the alert engine does
        db[ALERTS].insert_many(
            [
                {
                    "_id": "a1",
                    "rule_id": "hot-item",
                    "key": "i1",
                    "state": "firing",
                    "value": 900.0,
                    "threshold": 500.0,
                    "severity": "warning",
                    "window_start": now,
                    "fired_at": now,
                },
                {
                    "_id": "a2",
                    "rule_id": "hot-item",
                    "key": "i2",
                    "state": "resolved",
                    "value": 700.0,
                    "threshold": 500.0,
                    "severity": "warning",
                    "window_start": now,
                    "fired_at": now,
                },
            ]
        )
        # The seeded stream may have fired the shipped rules too (item-surge, at 4x usual).
        fired = {doc["_id"]: doc["state"] for doc in db[ALERTS].find({}, {"state": 1})}
    at = _page("views/alerts.py")
    assert _metrics(at)["Firing now"] == str(list(fired.values()).count("firing"))
    recent = at.dataframe[-1].value
    assert {"i1", "i2"} <= set(recent["key"])
    assert len(recent) == len(fired)


@pytest.mark.parametrize("page", PAGES)
def test_every_page_has_an_empty_state(
    page: str, pipeline: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings_env(monkeypatch, pipeline)
    at = _page(page)
    assert at.info, "an empty database shows a friendly message, not a blank page"
    assert not at.error


@pytest.mark.parametrize("page", PAGES)
def test_an_unreachable_database_shows_a_banner_not_a_traceback(
    page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens here once the socket is closed
    monkeypatch.setenv("PULSE_MONGO_URI", f"mongodb://127.0.0.1:{port}")
    at = _page(page)
    assert any("unreachable" in error.value for error in at.error)


def test_pipeline_lag_counts_waiting_records_and_the_age_of_the_oldest(
    pipeline: Settings, tmp_path: Path
) -> None:
    before = datetime.now(UTC)
    summary, _ = produce(pipeline, tmp_path / "truth.json", events=2_000, malformed=0.01)
    after = datetime.now(UTC)
    later = after + timedelta(seconds=30)
    topic = pipeline.kafka.topic
    with mongo_client(pipeline.mongo) as client, closing(LagReader(pipeline.kafka)) as reader:
        db = database(client, pipeline.mongo)
        lag = reader.lag(reads.stored_offsets(db, topic), topic, now=later)
        assert lag.records == summary.records  # every record waits, good or bad
        # The oldest waiting record reached Kafka between `before` and `after`.
        assert 30 <= lag.seconds <= 30 + (after - before).total_seconds() + 1
        drain_until_caught_up(pipeline)
        lag = reader.lag(reads.stored_offsets(db, topic), topic, now=later)
        assert (lag.records, lag.seconds) == (0, 0.0)


def test_sidebar_choices_come_from_the_url_and_survive_a_page_change(
    pipeline: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_settings_env(monkeypatch, pipeline)
    at = AppTest.from_file(APP, default_timeout=30)
    at.query_params["range"] = "24h"
    at.query_params["types"] = ["view", "teleport"]  # an unknown type is ignored
    at.run()
    assert at.selectbox(key="range").value == "24h"
    assert at.multiselect(key="types").value == ["view"]

    at.toggle(key="paused").set_value(True).run()
    at.switch_page("views/items.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.toggle(key="paused").value is True
    assert at.selectbox(key="range").value == "24h"
    assert at.query_params["paused"] == "1" and at.query_params["range"] == "24h"
