"""How soon `make run` shows figures, as a newcomer meets it: over `--starts` fresh starts (the
local stack stopped before each), the seconds from `make run` to its table, to the dashboard
answering, and to the first event counted after that (the global document growing past what
it held when the dashboard answered). Each start ends with a Ctrl-C to the process group, as a
terminal sends it, and the time until every port it opened is closed.

    uv run python -m bench.first_figures --starts 5

Needs the default ports free (stops the local stack first); the database keeps its history.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated

import httpx
import typer

from bench.common import console, report, stop_cleanly_on_sigterm
from pulse.config import Settings, load_settings
from pulse.stack import services
from pulse.stack.process import port_open
from pulse.store import reads
from pulse.store.client import database, mongo_client

REPO = Path(__file__).resolve().parents[1]
RUNNING = "Ctrl-C stops it"


@dataclass(frozen=True)
class Start:
    """One fresh `make run`, its times in seconds from the command."""

    table_s: float
    dashboard_s: float
    first_event_s: float
    after_dashboard_s: float
    stopped_s: float
    """From the Ctrl-C until every port of the stack, the dashboard and /metrics is closed."""


def _until(what: str, deadline_s: float, check: Callable[[], bool]) -> float:
    """Seconds until `check()` is true; fails naming `what` after `deadline_s`."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > deadline_s:
            raise TimeoutError(f"{what}: not within {deadline_s:.0f} s")
        time.sleep(0.1)
    return time.monotonic() - started


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _events(settings: Settings) -> int:
    with mongo_client(settings.mongo) as client:
        figures = reads.totals(database(client, settings.mongo))
    return figures.events if figures else 0


def _ports(settings: Settings) -> list[tuple[str, int]]:
    ports = [(row.endpoint.host, row.endpoint.port) for row in services.services(settings)]
    ports.append(("127.0.0.1", settings.stack.dashboard_port))
    if settings.metrics.port:
        ports.append((settings.metrics.host, settings.metrics.port))
    return ports


def one_start(settings: Settings, log: Path) -> Start:
    """`make run` from a stopped stack until its first counted event, then Ctrl-C."""
    subprocess.run(["make", "down"], cwd=REPO, capture_output=True, check=False)
    lines: list[str] = []
    began = time.monotonic()
    run = subprocess.Popen(
        ["make", "run"],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "200"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group, as a terminal's foreground job
    )
    reader = threading.Thread(target=lambda: lines.extend(run.stdout or []), daemon=True)
    reader.start()
    try:
        _until("make run's table", 600, lambda: RUNNING in "".join(lines) or run.poll() is not None)
        if run.poll() is not None:
            raise RuntimeError("make run ended:\n" + "".join(lines)[-3000:])
        table = time.monotonic() - began
        dashboard = f"http://127.0.0.1:{settings.stack.dashboard_port}"
        _until("the dashboard answering", 120, lambda: _answers(dashboard))
        answered = time.monotonic() - began
        before = _events(settings)
        _until("the first counted event", 600, lambda: _events(settings) > before)
        first = time.monotonic() - began
    finally:
        interrupted = time.monotonic()
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGINT)
        run.wait(timeout=300)
        reader.join(timeout=60)
        log.write_text("".join(lines))
    ports = _ports(settings)
    _until("every port closed", 120, lambda: not any(port_open(*p) for p in ports))
    return Start(
        round(table, 1),
        round(answered, 1),
        round(first, 1),
        round(first - answered, 1),
        round(time.monotonic() - interrupted, 1),
    )


def main(
    starts: Annotated[int, typer.Option(min=1, help="Fresh starts of `make run`.")] = 5,
) -> None:
    """Time `make run` from the command to its first counted event, `starts` times."""
    stop_cleanly_on_sigterm()
    settings = load_settings()
    logs = settings.stack.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    rows = []
    for number in range(1, starts + 1):
        start = one_start(settings, logs / f"first-figures-{number}.log")
        console.print(f"start {number}: {start}")
        rows.append({"start": number, **asdict(start)})
    worst = max(row["after_dashboard_s"] for row in rows)
    report("first_figures", rows, {"worst_after_dashboard_s": worst})


if __name__ == "__main__":
    typer.run(main)
