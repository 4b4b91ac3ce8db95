"""Options and hooks shared by the whole suite."""

from __future__ import annotations

import pytest

from pulse.config import load_settings
from pulse.stack import services

_UP_BEFORE = pytest.StashKey[set[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--require-tools",
        action="store_true",
        help="fail (rather than skip) tests whose tools (chromium, kcat) are missing; CI sets it",
    )


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")  # a pytest-xdist worker, not the run itself


def pytest_sessionstart(session: pytest.Session) -> None:
    """Note which services were up before the run: those are left running at its end."""
    if not _is_worker(session.config):
        rows = services.status(load_settings())
        session.config.stash[_UP_BEFORE] = {row.name for row in rows if row.state != "stopped"}


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Stop the services a test started (the `live_stack` fixture), once every worker is done."""
    up_before = session.config.stash.get(_UP_BEFORE, None)
    if _is_worker(session.config) or up_before is None:
        return
    for service in services.services(load_settings()):
        if service.name not in up_before:
            service.pidfile.stop()
