"""What every benchmark shares: fresh topics, timing, the machine description, result files."""

from __future__ import annotations

import os
import platform
import signal
import statistics
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from pulse.config import Settings
from pulse.kafka.clients import delete_topic, ensure_topic

RESULTS = Path(__file__).parent / "results"
console = Console()


def stop_cleanly_on_sigterm() -> None:
    """SIGTERM (`kill`, a CI timeout) stops a benchmark as Ctrl-C does, so its cleanup runs:
    Python's default ends the process at once, leaving the servers it started running."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupt)


@contextmanager
def fresh_topic(settings: Settings, prefix: str, partitions: int | None = None) -> Iterator[str]:
    """A new topic for one measurement, deleted afterwards."""
    name = f"bench-{prefix}-{uuid.uuid4().hex[:8]}"
    ensure_topic(settings.kafka, name, partitions=partitions)
    try:
        yield name
    finally:
        delete_topic(settings.kafka, name)


def timed(action: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def percentile(values: list[float], share: float) -> float:
    """The value below which `share` of `values` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def median_rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def machine() -> dict[str, Any]:
    """Where the numbers were measured."""
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


def report(name: str, rows: list[dict[str, Any]], extra: dict[str, Any]) -> Path:
    """Print a table of rows and write them, with the machine, to bench/results/<name>.json."""
    table = Table(*rows[0].keys(), title=name)
    for row in rows:
        table.add_row(*(f"{v:,.2f}" if isinstance(v, float) else str(v) for v in row.values()))
    console.print(table)
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_bytes(
        orjson.dumps({"rows": rows, "machine": machine(), **extra}, option=orjson.OPT_INDENT_2)
    )
    console.print(f"results written to {path}")
    return path
