"""The atheris fuzz target of the intake runs, and finds nothing in a short run."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("atheris")  # wheels exist for Linux x86_64 only


def test_a_short_fuzz_run_tries_its_inputs_and_finds_no_escape() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.fuzz_intake", "-atheris_runs=5000", "-seed=1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2_000:] + result.stderr[-2_000:]
    assert "5,000 inputs tried, no escape" in result.stdout
