"""`pulse` starts without importing Prefect: a drain over a backlog should not spend seconds
importing an orchestrator it never talks to (issue 24's profile: 5.8 s of 40 s)."""

from __future__ import annotations

import subprocess
import sys


def test_the_pulse_command_imports_prefect_only_for_commands_that_use_it() -> None:
    probe = "import sys, pulse.cli.main; print([m for m in sys.modules if m.startswith('prefect')])"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
