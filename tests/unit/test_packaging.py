"""The wheel installs `pulse` alone: `flows/`, `tasks/`, `deployments/` and `streamlit_app/`
run from the project folder, so no generic top-level name lands in site-packages, and
`pulse` must not need them."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
APP_FOLDERS = ("flows", "tasks", "deployments", "streamlit_app")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_pulse_imports_none_of_the_folders_beside_it() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(_imported_roots(path) & set(APP_FOLDERS))
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
