"""The wheel installs `pulse` alone: `flows/`, `tasks/`, `deployments/` and `streamlit_app/`
run from the project folder, so no generic top-level name lands in site-packages, and
`pulse` must not need them."""

from __future__ import annotations

import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from tests.imports import imported_modules

REPO = Path(__file__).resolve().parents[2]
APP_FOLDERS = ("flows", "tasks", "deployments", "streamlit_app")


def test_pulse_imports_none_of_the_folders_beside_it() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(
            {name.split(".")[0] for name in imported_modules(path)} & set(APP_FOLDERS)
        )
        for path in (REPO / "pulse").rglob("*.py")
    }
    assert {path: roots for path, roots in offenders.items() if roots} == {}


UV = os.environ.get("UV") or shutil.which("uv")  # `uv run` names itself in UV


@pytest.mark.skipif(UV is None, reason="uv builds the wheel")
def test_the_wheel_holds_pulse_alone(tmp_path: Path) -> None:
    assert UV is not None
    subprocess.run(
        [UV, "build", "--wheel", "--out-dir", str(tmp_path), "--quiet"],
        cwd=REPO,
        check=True,
    )
    (wheel,) = tmp_path.glob("pulse-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        roots = {name.split("/")[0] for name in archive.namelist()}
    assert {root for root in roots if not root.endswith(".dist-info")} == {"pulse"}
    assert "pulse/stack/kafka/jars.lock" in archive.namelist()  # the broker's lock ships too
