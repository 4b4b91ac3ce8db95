"""`pulse run` (`make run`): the whole pipeline on this machine, until Ctrl-C.

Starts the local stack, serves the Prefect deployments (generator and consumer on schedules),
starts the dashboard, prints where everything is, and on Ctrl-C stops what it started.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from types import FrameType

import typer
from rich.console import Console
from rich.table import Table

from pulse.config import Settings, load_settings
from pulse.metrics.server import metrics_url
from pulse.stack import services
from pulse.stack.prerequisites import MissingPrerequisiteError
from pulse.stack.process import PidFile, log_tail
from pulse.stack.services import ServiceStatus, StackError

console = Console()
REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "streamlit_app" / "app.py"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _say(message: str) -> None:
    console.print(f"[dim]·[/dim] {message}")


def _apps(settings: Settings) -> dict[str, list[str]]:
    """The pipeline's own processes: the deployment runner and the dashboard."""
    return {
        "serve": [sys.executable, "-m", "deployments.serve"],
        "dashboard": [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            str(DASHBOARD),
            # The other options are in .streamlit/config.toml, shared with docker compose.
            f"--server.port={settings.stack.dashboard_port}",
        ],
    }


def run() -> None:
    """Start everything, show the URLs, and keep running until Ctrl-C."""
    settings = load_settings()
    was_up = {row.name for row in services.status(settings) if row.state != "stopped"}
    try:
        rows = services.up(settings, _say)
    except (StackError, MissingPrerequisiteError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    children = _start_apps(settings)
    _show_where(settings, rows, "dashboard" in children)
    # Ctrl-C, `kill` and a closed terminal all stop everything started here. (A shell starts
    # background jobs with SIGINT ignored; setting a handler makes `kill -INT` work there too.)
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, _interrupt)
    try:
        _watch(settings, children)
    except KeyboardInterrupt:
        console.print("stopping… (everything this run started; further Ctrl-C is ignored)")
    finally:
        _ignore_stop_signals()  # also when the loop ended otherwise (a child died)
        for name, pidfile in children.items():
            if pidfile.stop(timeout=30):  # SIGTERM: the runner cancels its flow runs cleanly
                _say(f"stopped {name}")
        for service in services.services(settings):
            if service.name not in was_up and service.pidfile.stop():
                _say(f"stopped {service.name}")
        kept = sorted(was_up)
        _say(f"left running what was up before: {', '.join(kept)}" if kept else "all stopped")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # A terminal's Ctrl-C reaches make, uv and this process at once, and uv forwards its own:
    # the second one must not cut the cleanup short and leave the stack running.
    _ignore_stop_signals()
    raise KeyboardInterrupt


def _ignore_stop_signals() -> None:
    for stop_signal in STOP_SIGNALS:
        signal.signal(stop_signal, signal.SIG_IGN)


def _start_apps(settings: Settings) -> dict[str, PidFile]:
    children = {}
    for name, command in _apps(settings).items():
        pidfile = services.app_pidfile(settings, name)
        pidfile.stop()  # a leftover of a run that was killed
        log = settings.stack.state_dir / "logs" / f"{name}.log"
        pidfile.start(command, log_path=log, cwd=REPO)
        children[name] = pidfile
    return children


def _show_where(settings: Settings, rows: list[ServiceStatus], dashboard: bool) -> None:
    table = Table("what", "where")
    prefect = next(row for row in rows if row.name == "prefect")
    table.add_row("Prefect UI: runs, schedules, manual triggers", f"{prefect.url}/deployments")
    if dashboard:
        table.add_row("Dashboard", f"http://127.0.0.1:{settings.stack.dashboard_port}")
    if settings.metrics.port:
        table.add_row("Prometheus metrics", metrics_url(settings.metrics))
    for row in rows:
        if row.name != "prefect":
            table.add_row(row.name, row.url)
    table.add_row("logs", str(settings.stack.state_dir / "logs"))
    console.print(table)
    console.print(
        "Pulse is running: the generator streams and the consumer drains without a gap, in "
        "runs of 60 s and 120 s; the first figures appear within about 20 s. Ctrl-C stops it."
    )


def _watch(settings: Settings, children: dict[str, PidFile]) -> None:
    """Wait; if a child dies, show why and stop."""
    while True:
        time.sleep(1)
        for name, pidfile in children.items():
            if pidfile.read() is None:
                log = settings.stack.state_dir / "logs" / f"{name}.log"
                console.print(f"[red]{name} stopped[/red]; last lines of {log}:")
                console.print(log_tail(log))
                raise typer.Exit(1)
