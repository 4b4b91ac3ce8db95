"""Pid files: start detached, stop the whole process group, never signal a stranger."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import orjson

from pulse.stack.process import PidFile, log_tail, port_open
from pulse.stack.service import Endpoint
from tests.waiting import wait_until

# A parent that starts a child in its own group, like `prefect server start` does.
PARENT_WITH_CHILD = (  # both live until signalled: the test stops them
    "import signal, subprocess, sys;"
    "subprocess.Popen([sys.executable, '-c', 'import signal; signal.pause()']);"
    "print('ready', flush=True); signal.pause()"
)


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except FileNotFoundError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                members.append(int(entry.name))
    return members


def test_start_records_and_stop_kills_the_whole_group(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "pids" / "svc.pid")
    log = tmp_path / "logs" / "svc.log"
    record = pidfile.start([sys.executable, "-c", PARENT_WITH_CHILD], log_path=log)
    assert pidfile.read() == record
    wait_until(
        lambda: (len(_group_members(record.pid)), "ready" in log_tail(log)),
        timeout=10,
        what="parent and child running",
        done=lambda seen: seen == (2, True),
        every=0.05,
    )

    assert pidfile.stop(timeout=5) is True
    assert _group_members(record.pid) == []
    assert not pidfile.path.exists()
    assert pidfile.stop() is False  # nothing left to stop


def test_a_reused_pid_is_not_mistaken_for_our_process(tmp_path: Path) -> None:
    pidfile = PidFile(tmp_path / "svc.pid")
    # Our own pid with a different start time: an unrelated process that took the pid.
    pidfile.path.write_bytes(orjson.dumps({"pid": os.getpid(), "start_ticks": 1, "command": ["x"]}))
    assert pidfile.read() is None
    assert pidfile.stop() is False  # and it must not signal that process (this test would die)


def test_a_pid_file_written_before_psutil_still_finds_its_process(tmp_path: Path) -> None:
    """Pid files of a stack started by an older Pulse hold the start in clock ticks since
    boot (Linux): `down` after an upgrade must still stop that stack."""
    stat = Path(f"/proc/{os.getpid()}/stat").read_text()
    ticks = int(stat[stat.rindex(")") + 2 :].split()[19])
    pidfile = PidFile(tmp_path / "svc.pid")
    pidfile.path.write_bytes(
        orjson.dumps({"pid": os.getpid(), "start_ticks": ticks, "command": ["x"]})
    )
    record = pidfile.read()
    assert record is not None and record.pid == os.getpid()


def test_port_open_sees_a_listener(tmp_path: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_open("127.0.0.1", port)
    assert not port_open("127.0.0.1", port)


def test_endpoints_parse_addresses_and_uris() -> None:
    assert Endpoint.parse("127.0.0.1:9092", 9092) == Endpoint("127.0.0.1", 9092)
    assert Endpoint.parse("mongodb://user:pw@db.example:27018/x", 27017) == Endpoint(
        "db.example", 27018
    )
    assert Endpoint.parse("http://localhost:4200/api", 80).is_local
    assert not Endpoint.parse("kafka:9092", 9092).is_local
