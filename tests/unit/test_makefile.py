"""The Makefile's front door on a machine without uv (dry runs: nothing is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make") or "make"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_without_uv_make_installs_it_into_a_venv_not_the_system_python(tmp_path: Path) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    bare = tmp_path / "bin"  # a PATH with bash and python3 but no uv
    bare.mkdir()
    for tool in ("bash", "sh", "python3", "rm", "echo"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    plan = subprocess.run(
        [MAKE, "-n", "install"],  # -n: print the commands, run none
        cwd=tmp_path,
        env={"PATH": str(bare)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "python3 -m venv .tools" in plan
    assert '.tools/bin/python -m pip install --quiet "uv' in plan
    assert ".tools/bin/uv sync --frozen" in plan
    assert "pip install" not in plan.replace(".tools/bin/python -m pip install", "")
