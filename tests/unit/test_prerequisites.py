"""Missing or outdated tools give one line that says what is missing and how to install it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.stack.prerequisites import (
    MissingPrerequisiteError,
    require_go,
    require_java,
    require_tool,
)


def _fake_java(folder: Path, version_line: str) -> None:
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(0o755)


def test_missing_java_says_how_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingPrerequisiteError) as error:
        require_java(17)
    message = str(error.value)
    assert "java >= 17 is missing" in message
    assert "apt-get install" in message
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
def test_java_version_is_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str, accepted: bool
) -> None:
    _fake_java(tmp_path, line)
    monkeypatch.setenv("PATH", str(tmp_path))
    if accepted:
        assert require_java(17) == str(tmp_path / "java")
    else:
        with pytest.raises(MissingPrerequisiteError, match="java >= 17 is required"):
            require_java(17)


def test_missing_tool_names_purpose_and_fix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(MissingPrerequisiteError) as error:
        require_tool("mvn", "fetches the Kafka jars", "apt-get install -y maven")
    assert str(error.value) == "mvn is missing (fetches the Kafka jars): apt-get install -y maven"


@pytest.mark.parametrize(
    ("line", "accepted"),
    [
        ("go version go1.26.8 linux/amd64", True),
        ("go version go1.22.0 linux/amd64", True),
        ("go version go1.19.8 linux/amd64", False),  # Debian 12's golang-go
        ("nonsense", False),
    ],
)
def test_go_version_is_checked_in_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, line: str, accepted: bool
) -> None:
    go = tmp_path / "go"
    go.write_text(f"#!/bin/sh\necho '{line}'\n")
    go.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    if accepted:
        assert require_go() == str(go)
    else:
        with pytest.raises(MissingPrerequisiteError, match=r"go >= 1\.22 is required") as error:
            require_go()
        assert "\n" not in str(error.value) and "PULSE_MONGO_URI" in str(error.value)
