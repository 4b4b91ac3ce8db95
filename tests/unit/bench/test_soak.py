"""The soak's verdicts (bench/soak.py:summarise): what counts as flat after the warm-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.soak import summarise

REPO = Path(__file__).resolve().parents[3]


def _minute(n: int, ledger: int, runner: float, p99: float, flushes: list[float]) -> dict[str, Any]:
    return {
        "minute": n,
        "counts": {"ledger": ledger},
        "rss_mb": {"runner": runner, "flow_runs": 3.0},
        "prefect_db_mb": 10.0 + n,
        "mongo_wal_mb": 80.0 + n % 3,
        "freshness_p99": p99,
        "flush_seconds": flushes,
    }


def test_growth_during_the_warmup_is_left_out_and_growth_after_it_is_not() -> None:
    rows = [_minute(n, 60 * n, 200.0, 1.0, [1.0]) for n in range(1, 11)]  # grows throughout
    rows += [_minute(n, 600, 200.0 + n, 1.0, [2.0]) for n in range(11, 21)]  # then flat
    flat = summarise(rows, warmup=10)
    assert flat["count_flatness"]["ledger"] == 0.0
    assert flat["rss_flatness"]["runner"] < 0.03
    assert "flow_runs" not in flat["rss_flatness"]  # a number of processes, not memory
    growing = summarise(rows, warmup=5)
    assert growing["count_flatness"]["ledger"] > 0.15
    assert growing["prefect_db_mb"] == [16.0, 30.0]
    assert growing["mongo_wal_mb"] == [80.0, 82.0]


def test_freshness_and_flushes_are_judged_minute_by_minute() -> None:
    rows = [_minute(n, 100, 100.0, 2.5 if n == 7 else 0.5, [0.5, 3.0]) for n in range(1, 11)]
    summary = summarise(rows, warmup=2)
    assert summary["freshness_p99_max"] == 2.5
    assert summary["freshness_p99_minutes_over_2s"] == 1
    assert summary["flushes"] == 20
    assert summary["flush_p99"] == 3.0


def test_sigterm_runs_a_benchmarks_cleanup(tmp_path: Path) -> None:
    cleaned = tmp_path / "cleaned"
    script = (
        "import os, signal, sys\n"
        "from bench.common import stop_cleanly_on_sigterm\n"
        "stop_cleanly_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    signal.pause()\n"
        "finally:\n"
        f"    open({str(cleaned)!r}, 'w').close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, cwd=REPO, capture_output=True, timeout=60
    )
    assert cleaned.exists(), done.stderr.decode()[-500:]
    assert b"KeyboardInterrupt: SIGTERM" in done.stderr
