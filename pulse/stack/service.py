"""What every local service of the stack provides, and where its files live."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pulse.stack.process import PidFile

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})

Say = Callable[[str], None]
"""Where a service reports progress of slow preparation steps (fetching, building)."""


@dataclass(frozen=True)
class Endpoint:
    """A host and port a service listens on."""

    host: str
    port: int

    @property
    def is_local(self) -> bool:
        return self.host in LOCAL_HOSTS

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def parse(cls, address: str, default_port: int) -> Endpoint:
        """Parse 'host:port' or a URL like 'scheme://user@host:port/path'."""
        parts = urlsplit(address if "//" in address else f"//{address}")
        return cls(parts.hostname or "127.0.0.1", parts.port or default_port)


@dataclass(frozen=True)
class Launch:
    """How to start a service process."""

    command: list[str]
    env: dict[str, str] | None = None
    cwd: Path | None = None
    notes: list[str] = field(default_factory=list)


class LocalService(ABC):
    """A service `up` can start on this machine, or reuse if something already answers."""

    name: str

    def __init__(self, state_dir: Path) -> None:
        self.home = state_dir / self.name
        self.pidfile = PidFile(state_dir / "pids" / f"{self.name}.pid")
        self.log_path = state_dir / "logs" / f"{self.name}.log"

    @property
    @abstractmethod
    def endpoint(self) -> Endpoint:
        """Where the service listens."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The address to show users."""

    @abstractmethod
    def answers(self) -> bool:
        """True when the service really serves requests (not just an open port)."""

    @abstractmethod
    def prepare(self, say: Say) -> Launch:
        """Fetch, build or initialise what the service needs (cached); return how to start it."""

    @property
    def kind(self) -> str:
        """Which implementation runs (e.g. 'ferretdb' or 'mongod'); the name by default."""
        return self.name
