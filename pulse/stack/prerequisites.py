"""Checks for the tools the local stack needs; each failure is one line saying how to fix it."""

from __future__ import annotations

import re
import shutil
import subprocess


class MissingPrerequisiteError(RuntimeError):
    """A tool the local stack needs is absent or too old."""


def require_java(minimum: int = 17) -> str:
    """Path of a `java` that is at least `minimum`."""
    java = shutil.which("java")
    if java is None:
        raise MissingPrerequisiteError(
            f"java >= {minimum} is missing (needed for the local Kafka broker): "
            "install it, e.g. `apt-get install -y openjdk-17-jdk-headless`"
        )
    version = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', version)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    if major < minimum:
        raise MissingPrerequisiteError(
            f"java >= {minimum} is required for the local Kafka broker, found {major or 'unknown'} "
            f"at {java}: install e.g. `apt-get install -y openjdk-17-jdk-headless`"
        )
    return java


GO_HINT = (
    "install Go >= 1.22 (https://go.dev/dl/; Debian 12's golang-go is 1.19), or put `mongod` "
    "on PATH, or set PULSE_MONGO_URI to a running MongoDB"
)


def require_go(minimum: tuple[int, int] = (1, 22)) -> str:
    """Path of a `go` of at least `minimum`, to build FerretDB once."""
    wanted = ".".join(map(str, minimum))
    go = require_tool("go", "needed once to build FerretDB, used when there is no mongod", GO_HINT)
    output = subprocess.run([go, "version"], capture_output=True, text=True, check=False).stdout
    match = re.search(r"go(\d+)\.(\d+)", output)
    found = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
    if found < minimum:
        shown = ".".join(map(str, found)) if match else "unknown"
        raise MissingPrerequisiteError(
            f"go >= {wanted} is required to build FerretDB, found {shown} at {go}: {GO_HINT}"
        )
    return go


def require_tool(name: str, purpose: str, install_hint: str) -> str:
    """Path of a command-line tool, or one clear line on how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingPrerequisiteError(f"{name} is missing ({purpose}): {install_hint}")
    return path
