"""The dashboard in a real browser (Debian chromium driven by Playwright) on the live stack:
the KPIs equal what MongoDB holds, charts are drawn, and new data shows up by itself."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import oidc_provider_mock
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from pulse.config import DEFAULT_INTERACTION_TYPES, Settings
from pulse.store import session_figures
from pulse.store.client import database, mongo_client
from pulse.store.schema import TOTALS, TOTALS_ID
from tests.integration.reconcile import drain_until_caught_up, produce, subprocess_env
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags chromium keeps dialling Google, which this
# machine's closed network refuses; the attempts slow every page load.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


def _require_chromium(request: pytest.FixtureRequest) -> None:
    """Skip without Debian's chromium; fail instead where CI asks for every tool."""
    if not shutil.which(CHROMIUM):
        if request.config.getoption("--require-tools"):
            pytest.fail("chromium is required (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium); CI installs it")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _streamlit(
    pipeline: Settings, log: Path, port: int, *options: str, **env: str
) -> Iterator[str]:
    """The Streamlit app on `port` serving the isolated pipeline's database; yields its URL."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(REPO / "streamlit_app" / "app.py"),
            f"--server.port={port}",  # the rest from .streamlit/config.toml, as `make run` does
            *options,
        ],
        cwd=REPO,
        env=subprocess_env(pipeline, **env),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_until(lambda: _answers(f"{url}/_stcore/health"), timeout=60, what="Streamlit to answer")
    yield url
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture
def dashboard(pipeline: Settings, tmp_path: Path) -> Iterator[str]:
    with _streamlit(pipeline, tmp_path / "streamlit.log", _free_port()) as url:
        yield url


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _metrics(page: Page) -> dict[str, str]:
    values = {}
    for metric in page.query_selector_all("[data-testid='stMetric']"):
        label = metric.query_selector("[data-testid='stMetricLabel']")
        value = metric.query_selector("[data-testid='stMetricValue']")
        if label and value:
            values[label.inner_text().strip()] = value.inner_text().strip()
    return values


def _wait_for_metric(page: Page, label: str, expected: str, timeout: float) -> None:
    wait_until(
        lambda: _metrics(page).get(label),
        timeout=timeout,
        what=f"{label} shows {expected!r}",
        done=lambda seen: seen == expected,
        every=0.5,
    )


def test_browser_sees_live_kpis_charts_and_refreshes(
    request: pytest.FixtureRequest, pipeline: Settings, dashboard: str, tmp_path: Path
) -> None:
    _require_chromium(request)
    produce(pipeline, tmp_path / "first.json", events=6_000, users=200, items=40, seed=1)
    drain_until_caught_up(pipeline)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(dashboard)
        page.wait_for_selector(
            "[data-testid='stApp'][data-test-connection-state='CONNECTED']", timeout=60_000
        )
        page.wait_for_selector("[data-testid='stMetricValue']", timeout=60_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)

        with mongo_client(pipeline.mongo) as client:
            db = database(client, pipeline.mongo)
            totals = db[TOTALS].find_one({"_id": TOTALS_ID})
            assert totals is not None
            _wait_for_metric(page, "Total interactions", f"{totals['events']:,}", 20)
            metrics = _metrics(page)
            assert metrics["Distinct users"] == f"{totals['users']:,}"
            assert metrics["Dead-lettered"] == f"{totals['dead_lettered']:,}"
            assert len(page.query_selector_all(".js-plotly-plot")) == 2
            page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

            # New events arrive; the page (auto-refresh every 2 s) shows them without a reload.
            produce(pipeline, tmp_path / "second.json", events=3_000, users=200, items=40, seed=2)
            drain_until_caught_up(pipeline)
            newer = db[TOTALS].find_one({"_id": TOTALS_ID})
            assert newer is not None and newer["events"] > totals["events"]
            _wait_for_metric(page, "Total interactions", f"{newer['events']:,}", 30)

            # The Users page: monthly active users, estimated, near the exact distinct count.
            sidebar = page.locator("[data-testid='stSidebar']")
            sidebar.get_by_role("link", name="Users").click()
            page.get_by_role("heading", name="Users").wait_for(timeout=30_000)
            mau = wait_until(
                lambda: _metrics(page).get("MAU", ""), timeout=30, what="the Users page's MAU card"
            )
            assert abs(int(mau.replace(",", "")) - newer["users"]) <= max(3, newer["users"] // 20)
            page.get_by_text("estimated from daily HyperLogLog sketches").first.wait_for()

            # The Funnel page: each step's exact count since the start, in order.
            sidebar.get_by_role("link", name="Funnel").click()
            page.get_by_role("heading", name="Funnel", exact=True).wait_for(timeout=30_000)
            page.get_by_text("Exact counts of each step's events").wait_for(timeout=30_000)
            since_start = page.locator(".js-plotly-plot", has_text="Funnel since the start")
            labels = wait_until(
                lambda: since_start.locator("text").all_text_contents(),
                timeout=30,
                what="the funnel since the start",
                done=lambda texts: "view" in texts,
            )
            # Each step's text is its count, then its share of the first step ('6263100%').
            shown = [text for text in labels if text.endswith("%")]
            counts = [newer["types"][step] for step in DEFAULT_INTERACTION_TYPES]
            assert len(shown) == len(counts), labels
            assert all(text.startswith(str(n)) for text, n in zip(shown, counts, strict=True)), (
                shown,
                counts,
            )
            page.screenshot(path=str(tmp_path / "funnel.png"), full_page=True)

            # The Sessions page: every session the database holds began in the last hour.
            sidebar.get_by_role("link", name="Sessions").click()
            page.get_by_role("heading", name="Sessions", exact=True).wait_for(timeout=30_000)
            started = session_figures.all_sessions(db).started
            assert started >= newer["users"]  # each user's first session, at least
            _wait_for_metric(page, "Started", f"{started:,}", 30)
            page.locator(".js-plotly-plot", has_text="Sessions started and ended").wait_for()
            page.screenshot(path=str(tmp_path / "sessions.png"), full_page=True)
        browser.close()
    assert (tmp_path / "overview.png").stat().st_size > 10_000


def test_sidebar_choices_survive_page_changes_and_ride_in_the_url(
    request: pytest.FixtureRequest, dashboard: str
) -> None:
    _require_chromium(request)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{dashboard}/?range=6h")  # a shared link opens the view it names
        sidebar = page.locator("[data-testid='stSidebar']")
        time_range = sidebar.get_by_role("combobox", name="Time range")
        wait_until(
            lambda: time_range.input_value() if time_range.count() else None,
            timeout=60,
            what="the time range taken from the URL",
            done=lambda value: value == "last 6 hours",
            every=0.5,
        )

        sidebar.get_by_text("Pause", exact=True).click()
        page.wait_for_url("**paused=1**", timeout=10_000)
        sidebar.get_by_role("link", name="Items").click()
        page.get_by_role("heading", name="Items").wait_for(timeout=30_000)

        pause = sidebar.get_by_role("switch", name="Pause")
        assert pause.is_checked(), "Pause was reset by the page change"
        assert time_range.input_value() == "last 6 hours"
        url = page.url
        assert "/items" in url and "range=6h" in url and "paused=1" in url, url
        page.get_by_text("Paused at").wait_for(timeout=10_000)  # the page obeys the choice
        browser.close()


@pytest.fixture
def identity_provider() -> Iterator[str]:
    """A local OpenID Connect provider (oidc-provider-mock): who signs in is typed into its
    form; an account's claims are set with PUT /users/<sub>."""
    with oidc_provider_mock.run_server_in_thread() as server:
        yield f"http://localhost:{server.server_port}"


OVERVIEW = "Pulse: live user interactions"
"""The overview page's heading: what an admitted account sees first (an empty database here)."""


def _sign_in(browser: Browser, dashboard: str, account: str) -> Page:
    """A fresh browser session that opens the dashboard and signs in as `account`."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(dashboard)
    page.get_by_role("button", name="Log in").click(timeout=60_000)
    page.locator("input[name='sub']").fill(account)  # the provider's own sign-in form
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(f"{dashboard}/**", timeout=30_000)
    return page


def test_login_admits_the_allowlist_and_refuses_everyone_else(
    request: pytest.FixtureRequest, pipeline: Settings, identity_provider: str, tmp_path: Path
) -> None:
    _require_chromium(request)
    accounts = {
        "alice@example.com": {"email": "alice@example.com", "email_verified": True},
        "mallory@elsewhere.example": {"email": "mallory@elsewhere.example"},
        "eve@example.com": {"email": "eve@example.com", "email_verified": False},
    }
    for sub, claims in accounts.items():
        httpx.put(f"{identity_provider}/users/{sub}", json=claims).raise_for_status()
    port = _free_port()
    secrets = tmp_path / "secrets.toml"  # Streamlit's st.login settings, as docs/security.md
    secrets.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{uuid.uuid4().hex}"\n'
        'client_id = "pulse-dashboard"\n'
        'client_secret = "any"\n'
        f'server_metadata_url = "{identity_provider}/.well-known/openid-configuration"\n'
    )
    login = {
        "PULSE_DASHBOARD_REQUIRE_LOGIN": "true",
        "PULSE_DASHBOARD_ALLOWED_USERS": '["@example.com"]',
    }
    with (
        _streamlit(
            pipeline, tmp_path / "streamlit.log", port, f"--secrets.files={secrets}", **login
        ) as dashboard,
        sync_playwright() as playwright,
    ):
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

        alice = _sign_in(browser, dashboard, "alice@example.com")
        alice.get_by_role("heading", name=OVERVIEW).wait_for(timeout=60_000)
        assert alice.get_by_role("link", name="Items").count() == 1
        alice.screenshot(path=str(tmp_path / "admitted.png"))

        for refused in ("mallory@elsewhere.example", "eve@example.com"):
            page = _sign_in(browser, dashboard, refused)
            page.get_by_text(f"{refused} may not open this dashboard").wait_for(timeout=60_000)
            assert page.get_by_role("heading", name=OVERVIEW).count() == 0
            assert page.get_by_role("link", name="Items").count() == 0
            page.get_by_role("button", name="Log out").wait_for()
        browser.close()
