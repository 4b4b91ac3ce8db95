"""The benchmark suite still runs: `python -m bench.run --smoke` (tiny sizes, no speed checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from pulse.config import Settings

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_benchmark_suite_runs_and_writes_its_summary(
    request: pytest.FixtureRequest, live_stack: Settings, deployment_names: None
) -> None:  # deployment_names: the consumer benchmark serves the drain (bench/as_run.py)
    if not shutil.which("kcat"):
        if request.config.getoption("--require-tools"):
            pytest.fail("kcat is required (apt-get install -y kcat)")
        pytest.skip("kcat is not installed (apt-get install -y kcat); CI installs it")
    result = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = orjson.loads((REPO / "bench" / "results" / "summary-smoke.json").read_bytes())
    assert {"producer", "consumer", "freshness", "dashboard", "history", "profile"} <= set(summary)
    assert [row["history"] for row in summary["history"]["rows"]] == ["empty", "1 hour"]
    assert {row["contender"] for row in summary["consumer"]["rows"]} >= {"pulse"}
    # `pulse consume` and the served drain run count the same topic exactly, like in-process
    as_run = summary["consumer"]["as_run_exact"]
    assert len(as_run) == 2, as_run
    assert all(all(checks.values()) for checks in as_run.values()), as_run
    assert [row["page"] for row in summary["dashboard"]["rows"]] == [
        "overview",
        "items",
        "items, 14 days",
        "users",
        "funnel",
        "sessions",
        "sessions, 7 days",
        "alerts",
        "health",
    ]
