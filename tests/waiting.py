"""Wait for a condition itself, with a deadline that fails with what it last saw."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T],
    *,
    timeout: float,
    what: str,
    done: Callable[[T], bool] = bool,
    every: float = 0.1,
) -> T:
    """Call `probe` until `done(result)`; return that result, or fail naming `what` and the last
    result after `timeout` seconds. `every` only spaces the probes; it synchronises nothing."""
    deadline = time.monotonic() + timeout
    while True:
        seen = probe()
        if done(seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s; last saw {seen!r}")
        time.sleep(every)
