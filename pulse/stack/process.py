"""Background processes that `up` starts and `down` stops, tracked by pid files.

A pid file records the pid and the kernel's start time of the process, so `down` never
signals an unrelated process that happens to reuse the pid after a reboot.
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


@dataclass(frozen=True)
class ProcessRecord:
    """What a pid file holds about a started process."""

    pid: int
    start_ticks: int
    command: list[str]


def _start_ticks(pid: int) -> int | None:
    """Start time of a live (non-zombie) process in clock ticks since boot, else None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, ticks = fields[0], fields[19]
    return None if state in {"Z", "X"} else int(ticks)


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
        record = ProcessRecord(int(data["pid"]), int(data["start_ticks"]), list(data["command"]))
        if _start_ticks(record.pid) != record.start_ticks:
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
        ticks = _start_ticks(process.pid) or 0
        record = ProcessRecord(process.pid, ticks, list(command))
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


def _group_alive(pgid: int) -> bool:
    """True while any non-zombie member of the process group exists."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] not in {"Z", "X"}:
            return True
    return False


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
