"""Bring the local stack (Kafka, MongoDB, Prefect) up, down, and report its status."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from pulse.config import Settings
from pulse.stack.kafka_broker import KafkaBroker
from pulse.stack.mongo_server import MongoServer
from pulse.stack.prefect_server import PrefectServer
from pulse.stack.process import PidFile, log_tail
from pulse.stack.service import LocalService, Say

State = Literal["running", "external", "starting", "stopped"]


@dataclass(frozen=True)
class ServiceStatus:
    """One service as `status` reports it."""

    name: str
    kind: str
    state: State
    pid: int | None
    url: str


class StackError(RuntimeError):
    """A service could not be started; the message says which and why."""


def services(settings: Settings) -> list[LocalService]:
    """The stack's services, in the order they are shown."""
    return [
        KafkaBroker(settings.kafka, settings.stack),
        MongoServer(settings.mongo, settings.stack),
        PrefectServer(settings.prefect, settings.stack),
    ]


APPS = ("serve", "dashboard")
"""Pipeline processes `pulse run` starts on top of the services."""


def app_pidfile(settings: Settings, name: str) -> PidFile:
    """Pid file of one of the pipeline's own processes (see APPS)."""
    return PidFile(settings.stack.state_dir / "pids" / f"{name}.pid")


def status_of(service: LocalService) -> ServiceStatus:
    """What is running for `service`, and whether Pulse started it."""
    record = service.pidfile.read()
    answers = service.answers()
    pid = record.pid if record else None
    if record and answers:
        state: State = "running"
    elif record:
        state = "starting"
    elif answers:
        state = "external"
    else:
        state = "stopped"
    return ServiceStatus(service.name, service.kind, state, pid, service.url)


def status(settings: Settings) -> list[ServiceStatus]:
    """Each service's state, pid and address."""
    return [status_of(service) for service in services(settings)]


def up(settings: Settings, say: Say) -> list[ServiceStatus]:
    """Start what is not running yet and wait until every service answers. Idempotent."""
    timeout = settings.stack.start_timeout_seconds
    stack = services(settings)
    with ThreadPoolExecutor(max_workers=len(stack)) as pool:
        futures = [pool.submit(ensure, service, timeout, say) for service in stack]
    errors = [str(future.exception()) for future in futures if future.exception()]
    if errors:
        raise StackError("\n".join(errors))
    return status(settings)


def down(settings: Settings, say: Say) -> None:
    """Stop exactly the processes `up` (and `pulse run`) started, by pid; leave the rest alone."""
    for name in APPS:
        record = app_pidfile(settings, name).read()
        if app_pidfile(settings, name).stop():
            say(f"stopped {name} (pid {record.pid if record else '?'})")
    for service in reversed(services(settings)):
        record = service.pidfile.read()
        if service.pidfile.stop():
            say(f"stopped {service.name} (pid {record.pid if record else '?'})")
        elif service.answers():
            say(f"{service.name} at {service.url} was not started by Pulse: left running")


def ensure(service: LocalService, timeout: float, say: Say) -> None:
    """Start `service` unless it already answers, then wait until it does."""
    if service.answers():
        return
    if service.pidfile.read() is None:
        launch = service.prepare(lambda message: say(f"{service.name}: {message}"))
        for note in launch.notes:
            say(f"{service.name}: {note}")
        record = service.pidfile.start(
            launch.command, log_path=service.log_path, env=launch.env, cwd=launch.cwd
        )
        say(f"started {service.kind} (pid {record.pid}), waiting for {service.endpoint}")
    deadline = time.monotonic() + timeout
    while not service.answers():
        if service.pidfile.read() is None:
            raise StackError(
                f"{service.name} exited during start-up; last lines of {service.log_path}:\n"
                f"{log_tail(service.log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"{service.name} did not answer on {service.endpoint} within {timeout:.0f} s "
                f"(it is still running; see {service.log_path}):\n{log_tail(service.log_path)}"
            )
        time.sleep(0.25)
