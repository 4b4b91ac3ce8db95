"""Background processes that `up` starts and `down` stops, tracked by pid files.

A pid file records the pid and the process's creation time, so `down` never signals an
unrelated process that happens to reuse the pid after a reboot. psutil reads both the same
way on Linux and macOS.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import psutil

SAME_START_SECONDS = 0.05
"""Creation times closer than this are one process's (psutil rounds to the clock tick)."""


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds about a started process."""

    pid: int
    created: float
    """The process's creation time (seconds since the epoch, psutil's `create_time`)."""
    command: list[str]


def _created(pid: int) -> float | None:
    """Creation time of a live (non-zombie) process, else None."""
    try:
        process = psutil.Process(pid)
        if process.status() in {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _recorded_created(data: dict[str, object]) -> float:
    """The creation time a pid file records. Files written before psutil (Linux only) hold the
    start in clock ticks since boot, from which psutil computes the same time."""
    if "created" in data:
        return float(str(data["created"]))
    ticks = int(str(data["start_ticks"]))
    return psutil.boot_time() + ticks / os.sysconf("SC_CLK_TCK")


class PidFile:
    """A process started by Pulse: its pid file, its log, its liveness."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> ProcessRecord | None:
        """The recorded process if it is still the same live process, else None."""
        try:
            data = orjson.loads(self.path.read_bytes())
        except (FileNotFoundError, orjson.JSONDecodeError):
            return None
        record = ProcessRecord(int(data["pid"]), _recorded_created(data), list(data["command"]))
        created = _created(record.pid)
        if created is None or abs(created - record.created) > SAME_START_SECONDS:
            return None
        return record

    def start(
        self,
        command: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcessRecord:
        """Start `command` detached in its own session, output appended to `log_path`."""
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,  # own process group: `down` stops its children too
            )
        record = ProcessRecord(process.pid, _created(process.pid) or 0.0, list(command))
        self.path.write_bytes(orjson.dumps(record.__dict__))
        return record

    def stop(self, timeout: float = 20.0) -> bool:
        """Stop the recorded process group: SIGTERM, then SIGKILL after `timeout`.

        Returns True if a process was running and is now gone.
        """
        record = self.read()
        if record is None:
            self.path.unlink(missing_ok=True)
            return False
        _signal_group(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _group_alive(record.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _group_alive(record.pid):
            _signal_group(record.pid, signal.SIGKILL)
            while _group_alive(record.pid):
                time.sleep(0.05)
        _reap(record.pid)
        self.path.unlink(missing_ok=True)
        return True


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def group_members(pgid: int) -> list[int]:
    """The live (non-zombie) processes of a process group."""
    members = []
    for process in psutil.process_iter(["status"]):
        try:
            if process.info["status"] in {psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD}:
                continue
            if os.getpgid(process.pid) == pgid:
                members.append(process.pid)
        except (ProcessLookupError, PermissionError):
            continue  # gone meanwhile, or not ours to see
    return members


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie member of the process group exists."""
    return bool(group_members(pgid))


def _reap(pid: int) -> None:
    """Collect an exited child of this process (if it is one) so no zombie lingers."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines of a service log, to show why a start failed."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log written)"
