"""Seconds spent in each named step of one piece of work, for the line that logs it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Laps:
    """`with laps("ledger"): ...` adds the block's seconds to the step "ledger"."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = clock

    @contextmanager
    def __call__(self, step: str) -> Iterator[None]:
        started = self._clock()
        try:
            yield
        finally:
            self.seconds[step] = self.seconds.get(step, 0.0) + self._clock() - started

    def __str__(self) -> str:
        return ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.seconds.items())
