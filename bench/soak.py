"""`make soak`: the deployed pipeline for an hour, retention scaled down, measured every minute.

It serves the deployments (`python -m deployments.serve`, as `make run` does) on a topic,
database and consumer group of its own, reporting to a Prefect server of its own
(`.state/soak/`), with every retention scaled down so that each collection reaches its steady
state within the hour (SCALED). The dashboard runs too, with a headless browser keeping the
overview open (it refreshes every 2 s, as a user's tab does); the runner's /metrics is scraped
every 15 s, as Prometheus would.

Every `--every` seconds it reads the freshness (pulse/kafka/lag.py, as the dashboard does).
Every minute it records each collection's document count, each process's RSS (runner, flow
runs, dashboard, Prefect server, Kafka, MongoDB), the Prefect database's size, the freshness
of the minute and the write seconds of the entity flushes it finished. At the end: the scheduled
runs by final state, and how flat each series stayed after the warm-up (`--warmup`).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import httpx
import orjson
import psutil
import typer
from playwright.sync_api import Page, sync_playwright
from prefect.client.orchestration import get_client
from prefect.client.schemas.sorting import FlowRunSort
from pymongo.database import Database

from bench.common import RESULTS, console, machine, percentile, stop_cleanly_on_sigterm
from bench.deployed import ENDED
from pulse.config import Settings, StackSettings, env_name, load_settings
from pulse.ingest.batch import entity_flush_id
from pulse.kafka.clients import delete_topic, ensure_topic
from pulse.kafka.lag import LagReader
from pulse.metrics.server import metrics_url
from pulse.prefect_api import prefect_api
from pulse.stack import services
from pulse.stack.mongo_server import MongoServer
from pulse.stack.prefect_server import PrefectServer
from pulse.store import reads
from pulse.store.client import Document, database, mongo_client
from pulse.store.schema import DEAD_LETTERS, ITEM_MINUTES, LEDGER, MINUTES, PERIODS, TIMELINE

REPO = Path(__file__).resolve().parents[1]
SOAK_STATE = REPO / ".state" / "soak"
PREFECT_PORT = 4210
DASHBOARD_PORT = 8510
METRICS_PORT = 9110
KEEP_MINUTES = 15
"""The soak's retention of the ledger, dead letters and alerts."""
PREFECT_KEEP_DAYS = 65 / 1_440
"""The soak's Prefect server keeps flow runs 65 minutes: Prefect keeps at least an hour."""
MINUTE_KEEP_MINUTES = 20
"""The soak's retention of per-minute documents: the default rules' windows (1 and 5 minutes)
need 2 and 10."""
SCALED = {
    ("retention", "ledger_hours"): KEEP_MINUTES / 60,
    ("retention", "dead_letter_days"): KEEP_MINUTES / 1_440,
    ("retention", "alert_days"): KEEP_MINUTES / 1_440,
    ("retention", "minute_days"): MINUTE_KEEP_MINUTES / 1_440,
    ("retention", "pass_minutes"): 1,
    ("stack", "prefect_retention_days"): PREFECT_KEEP_DAYS,
}
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
SCRAPE_SECONDS = 15.0


def _env(settings: Settings) -> dict[str, str]:
    """What the soak's processes get on top of the environment: its own names and retention."""
    own = {
        ("kafka", "topic"): settings.kafka.topic,
        ("kafka", "consumer_group"): settings.kafka.consumer_group,
        ("mongo", "database"): settings.mongo.database,
        ("prefect", "api_url"): settings.prefect.api_url,
        ("metrics", "port"): settings.metrics.port,
    }
    return {
        **os.environ,
        **{env_name(path): str(value) for path, value in (own | SCALED).items()},
        "PREFECT_API_URL": settings.prefect.api_url,
    }


def _start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()


def _soak_prefect(settings: Settings) -> PrefectServer:
    """A Prefect server of the soak's own, its flow runs kept PREFECT_KEEP_DAYS."""
    stack = StackSettings(state_dir=SOAK_STATE, prefect_retention_days=PREFECT_KEEP_DAYS)
    return PrefectServer(settings.prefect, stack)


@contextmanager
def _prefect_server(settings: Settings) -> Iterator[PrefectServer]:
    """The soak's own Prefect server, started here and stopped at the end."""
    server = _soak_prefect(settings)
    services.ensure(server, 180, lambda message: console.print(f"prefect: {message}"))
    try:
        yield server
    finally:
        server.pidfile.stop()


def _wait_until_answers(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"{url} did not answer within {seconds:.0f} s (logs in {SOAK_STATE})"
            )
        time.sleep(0.5)


def _rss_mb(pid: int | None) -> float:
    """Resident memory of a process and its children (0 if it is gone)."""
    if pid is None:
        return 0.0
    try:
        process = psutil.Process(pid)
        members = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for member in members:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return round(total / 2**20, 1)


def _processes(settings: Settings, serve: int, dashboard: int, prefect: int) -> dict[str, float]:
    """RSS in MiB: the runner alone, its flow-run processes (the largest), the rest whole."""
    runner = psutil.Process(serve)
    flow_runs = [_rss_mb(child.pid) for child in runner.children(recursive=False)]
    stack = {service.name: service.pidfile.read() for service in services.services(settings)}
    return {
        "runner": round(runner.memory_info().rss / 2**20, 1),
        "flow_run_max": max(flow_runs, default=0.0),
        "flow_runs": float(len(flow_runs)),
        "dashboard": _rss_mb(dashboard),
        "prefect": _rss_mb(prefect),
        **{name: _rss_mb(record.pid if record else None) for name, record in stack.items()},
    }


def _prefect_db_mb() -> float:
    files = list((SOAK_STATE / "prefect").glob("prefect.db*"))
    return round(sum(path.stat().st_size for path in files) / 2**20, 2)


def _wal_mb(settings: Settings) -> float:
    """The size of the soak database's SQLite WAL when the server is FerretDB (else 0): a
    bound the patch holds (docs/ferretdb.md, fix 5)."""
    data = MongoServer(settings.mongo, settings.stack).home / "data"
    wal = data / f"{settings.mongo.database}.sqlite-wal"
    return round(wal.stat().st_size / 2**20, 1) if wal.exists() else 0.0


def _counts(db: Database[Document]) -> dict[str, int]:
    return {name: db[name].count_documents({}) for name in sorted(db.list_collection_names())}


def _flush_seconds(db: Database[Document], topic: str, seen: set[str]) -> list[float]:
    """Write seconds of the entity flushes finished since the last call."""
    prefix = entity_flush_id(topic, []).rstrip("/")
    ledger = reads.ledger(db, 400)
    fresh = []
    for row in ledger.iter_rows(named=True):
        flush = row["batch"].startswith(prefix) and row["status"] == "applied"
        if flush and row["batch"] not in seen:
            seen.add(row["batch"])
            fresh.append(float(row["write_seconds"]))
    return fresh


def _run_states(settings: Settings, states: dict[str, str]) -> None:
    """Record the state of every flow run the soak's server holds (read as the soak goes: the
    server forgets them after PREFECT_KEEP_DAYS)."""
    with prefect_api(settings), get_client(sync_client=True) as client:
        for run in client.read_flow_runs(limit=200, sort=FlowRunSort.START_TIME_DESC):
            if run.state is not None and run.start_time is not None:
                states[f"{run.id}"] = f"{run.name}|{run.state.type.value}"


def _shown_total(page: Page) -> str:
    """The overview's first figure (total interactions), as the browser shows it."""
    try:
        return page.locator("[data-testid='stMetricValue']").first.inner_text(timeout=5_000)
    except Exception as exc:
        return f"no answer: {type(exc).__name__}"


def _flatness(series: list[float]) -> float:
    """The largest distance from the mean, as a share of it (0 for an empty or zero series)."""
    if not series or not statistics.mean(series):
        return 0.0
    mean = statistics.mean(series)
    return max(abs(value - mean) for value in series) / mean


def _scrape(url: str) -> bool:
    try:
        return httpx.get(url, timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def _sample_minute(
    db: Database[Document],
    topic: str,
    reader: LagReader,
    every: float,
    page: Page,
    metrics: str,
    scrapes: list[bool],
) -> list[float]:
    """A minute of freshness samples, scraping /metrics meanwhile (whether each answered into
    `scrapes`)."""
    lags: list[float] = []
    end = time.monotonic() + 60
    scraped = 0.0
    while time.monotonic() < end:
        tick = time.monotonic()
        lags.append(reader.lag(reads.stored_offsets(db, topic), topic).seconds)
        if tick - scraped >= SCRAPE_SECONDS:
            scrapes.append(_scrape(metrics))
            scraped = tick
        page.wait_for_timeout(max(0.0, every - (time.monotonic() - tick)) * 1000)
    return lags


def soak(
    settings: Settings, minutes: int, every: float, states: dict[str, str]
) -> list[dict[str, Any]]:
    """Serve, watch and record every minute (flow-run states into `states`); return the
    per-minute rows."""
    env = _env(settings)
    logs = SOAK_STATE / "logs"
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with ExitStack() as stack:
        prefect = stack.enter_context(_prefect_server(settings))
        serve = _start([sys.executable, "-m", "deployments.serve"], env, logs / "serve.log")
        stack.callback(_stop, serve)
        dashboard = _start(
            [
                sys.executable,
                *("-m", "streamlit", "run", str(REPO / "streamlit_app" / "app.py")),
                f"--server.port={DASHBOARD_PORT}",
            ],
            env,
            logs / "dashboard.log",
        )
        stack.callback(_stop, dashboard)
        playwright = stack.enter_context(sync_playwright())
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stack.callback(browser.close)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        dashboard_url = f"http://127.0.0.1:{DASHBOARD_PORT}"
        _wait_until_answers(f"{dashboard_url}/_stcore/health", dashboard, 120)
        page.goto(dashboard_url, timeout=120_000)
        reader = LagReader(settings.kafka)
        stack.callback(reader.close)
        db = database(stack.enter_context(mongo_client(settings.mongo)), settings.mongo)
        topic = settings.kafka.topic
        prefect_pid = prefect.pidfile.read()
        for minute in range(1, minutes + 1):
            scrapes: list[bool] = []
            lags = _sample_minute(
                db, topic, reader, every, page, metrics_url(settings.metrics), scrapes
            )
            flushes = _flush_seconds(db, topic, seen)
            row = {
                "minute": minute,
                "at": datetime.now(UTC).isoformat(timespec="seconds"),
                "freshness_p50": round(percentile(lags, 0.50), 2),
                "freshness_p99": round(percentile(lags, 0.99), 2),
                "freshness_max": round(max(lags), 2),
                "flushes": len(flushes),
                "flush_median": round(statistics.median(flushes), 2) if flushes else None,
                "flush_max": round(max(flushes), 2) if flushes else None,
                "flush_seconds": flushes,
                "prefect_db_mb": _prefect_db_mb(),
                "mongo_wal_mb": _wal_mb(settings),
                "rss_mb": _processes(
                    settings, serve.pid, dashboard.pid, prefect_pid.pid if prefect_pid else 0
                ),
                "counts": _counts(db),
                "dashboard_total": _shown_total(page),
                "metrics_answered": f"{sum(scrapes)}/{len(scrapes)}",
            }
            rows.append(row)
            console.print(
                f"min {minute:>2}: fresh p99 {row['freshness_p99']:.2f} s, "
                f"flush med {row['flush_median']} s, prefect db {row['prefect_db_mb']} MiB, "
                f"wal {row['mongo_wal_mb']} MiB, "
                f"rss {row['rss_mb']}, counts {row['counts']}, shown {row['dashboard_total']}"
            )
            _run_states(settings, states)
    return rows


def summarise(rows: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """How flat each series stayed after the warm-up, the freshness and the flushes."""
    steady = [row for row in rows if row["minute"] > warmup] or rows
    counts = {
        name: [float(row["counts"].get(name, 0)) for row in steady] for name in rows[-1]["counts"]
    }
    rss = {name: [row["rss_mb"][name] for row in steady] for name in rows[-1]["rss_mb"]}
    flushes = [seconds for row in rows for seconds in row["flush_seconds"]]
    lags_p99 = [row["freshness_p99"] for row in steady]
    return {
        "warmup_minutes": warmup,
        "count_flatness": {name: round(_flatness(series), 3) for name, series in counts.items()},
        "count_range": {name: [min(s), max(s)] for name, s in counts.items()},
        "rss_flatness": {
            name: round(_flatness(series), 3) for name, series in rss.items() if name != "flow_runs"
        },
        "rss_range_mb": {name: [min(s), max(s)] for name, s in rss.items()},
        "prefect_db_mb": [
            min(r["prefect_db_mb"] for r in steady),
            max(r["prefect_db_mb"] for r in steady),
        ],
        "mongo_wal_mb": [
            min(r["mongo_wal_mb"] for r in steady),
            max(r["mongo_wal_mb"] for r in steady),
        ],
        "freshness_p99_max": max(lags_p99),
        "freshness_p99_minutes_over_2s": sum(1 for lag in lags_p99 if lag > 2.0),
        "flush_median": round(statistics.median(flushes), 2) if flushes else None,
        "flush_p99": round(percentile(flushes, 0.99), 2) if flushes else None,
        "flushes": len(flushes),
    }


TABLE_COLLECTIONS = (LEDGER, DEAD_LETTERS, TIMELINE, MINUTES, ITEM_MINUTES, PERIODS)
TABLE_PROCESSES = ("runner", "flow_run_max", "dashboard", "prefect", "kafka", "mongo")


def markdown(rows: list[dict[str, Any]], every: int = 5) -> str:
    """Every `every`-th minute as a Markdown table row (docs/performance.md)."""
    head = [
        "minute",
        "freshness p99 (s)",
        "flush median / max (s)",
        *TABLE_COLLECTIONS,
        *(f"{name} MiB" for name in TABLE_PROCESSES),
        "Prefect DB MiB",
        "WAL MiB",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        if row["minute"] % every:
            continue
        cells = [
            str(row["minute"]),
            f"{row['freshness_p99']:.2f}",
            f"{row['flush_median']} / {row['flush_max']}",
            *(f"{row['counts'].get(name, 0):,}" for name in TABLE_COLLECTIONS),
            *(f"{row['rss_mb'].get(name, 0):,.0f}" for name in TABLE_PROCESSES),
            f"{row['prefect_db_mb']:.1f}",
            f"{row['mongo_wal_mb']:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(
    minutes: Annotated[int, typer.Option(help="How long to run, warm-up included.")] = 60,
    warmup: Annotated[int, typer.Option(help="Minutes left out of the flatness figures.")] = 25,
    every: Annotated[float, typer.Option(help="Seconds between freshness samples.")] = 2.0,
) -> dict[str, Any]:
    """Soak the served pipeline; write bench/results/soak.json."""
    if not shutil.which(CHROMIUM):
        console.print(
            f"[red]{CHROMIUM} is missing (the dashboard's browser): "
            "apt-get install -y chromium[/red]"
        )
        raise typer.Exit(2)
    if services.app_pidfile(load_settings(), "serve").read() is not None:
        console.print(
            "[red]`make run` is serving: stop it first (the soak needs the machine)[/red]"
        )
        raise typer.Exit(2)
    stop_cleanly_on_sigterm()
    tag = uuid.uuid4().hex[:8]
    settings = load_settings(
        kafka={"topic": f"soak-{tag}", "consumer_group": f"soak-{tag}"},
        mongo={"database": f"soak_{tag}"},
        prefect={"api_url": f"http://127.0.0.1:{PREFECT_PORT}/api"},
        metrics={"port": METRICS_PORT},
    )
    _soak_prefect(settings).pidfile.stop()  # one left by an interrupted soak, before its files go
    shutil.rmtree(SOAK_STATE / "prefect", ignore_errors=True)
    ensure_topic(settings.kafka)
    console.print(
        f"soaking for {minutes} min on topic {settings.kafka.topic} (logs: {SOAK_STATE / 'logs'})"
    )
    states: dict[str, str] = {}
    try:
        rows = soak(settings, minutes, every, states)
    finally:
        delete_topic(settings.kafka, settings.kafka.topic)
        with mongo_client(settings.mongo) as client:
            client.drop_database(settings.mongo.database)
    summary = summarise(rows, warmup)
    by_state = Counter(state.split("|")[1] for state in states.values())
    summary["runs"] = dict(by_state)
    summary["runs_not_completed"] = [
        state for state in states.values() if state.split("|")[1] in ENDED - {"COMPLETED"}
    ]
    result = {
        "summary": summary,
        "minutes": rows,
        "machine": machine(),
        "scaled": {env_name(path): value for path, value in SCALED.items()},
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_bytes(
        orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str)
    )
    console.print(summary)
    console.print(markdown(rows), markup=False)
    return result


if __name__ == "__main__":
    typer.run(main)
