"""Rate control: how many events per burst, when each burst is due, when the run ends."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class RatePlan(BaseModel):
    """Bursts of `batch_size` events every `interval_seconds`, until a total is reached.

    The total is one of `events`, `bursts` or `duration_seconds`; none means until stopped.
    Burst k is due at k * interval after the start (an absolute schedule, so delays do not
    accumulate); a burst that is late is sent at once and the lag is reported.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(1_000, ge=1)
    interval_seconds: float = Field(1.0, ge=0)
    speed_multiplier: float = Field(1.0, gt=0)
    events: int | None = Field(None, ge=1)
    bursts: int | None = Field(None, ge=1)
    duration_seconds: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_total(self) -> Self:
        given = [name for name in ("events", "bursts", "duration_seconds") if getattr(self, name)]
        if len(given) > 1:
            raise ValueError(f"give only one of events, bursts, duration_seconds (got {given})")
        return self

    @property
    def requested_rate(self) -> float:
        """Events per second asked for (infinite when bursts follow each other at once)."""
        return self.batch_size / self.interval_seconds if self.interval_seconds else math.inf

    @property
    def total_bursts(self) -> int | None:
        """How many bursts the run sends, if known in advance."""
        if self.bursts:
            return self.bursts
        if self.events:
            return math.ceil(self.events / self.batch_size)
        if self.duration_seconds and self.interval_seconds:
            return max(1, round(self.duration_seconds / self.interval_seconds))
        return None

    @property
    def total_events(self) -> int | None:
        """How many events the run sends, if known in advance."""
        if self.events:
            return self.events
        bursts = self.total_bursts
        return bursts * self.batch_size if bursts else None

    def head_start_ms(self) -> int:
        """How far before the run's start its simulated time begins, so that time running
        `speed_multiplier` times faster reaches the present as the run ends, never later:
        an event time ahead of its Kafka timestamp is dead-lettered (PULSE_CONSUMER_MAX_EVENT_
        LEAD_SECONDS). A run without a known end starts UNBOUNDED_HEAD_START_SECONDS of wall
        time back; once its time has caught up, it runs with the clock."""
        if self.speed_multiplier <= 1:
            return 0
        bursts = self.total_bursts
        if self.duration_seconds:
            planned = self.duration_seconds
        elif bursts and self.interval_seconds:
            planned = bursts * self.interval_seconds
        else:
            planned = UNBOUNDED_HEAD_START_SECONDS
        return round(min((self.speed_multiplier - 1) * planned, MAX_HEAD_START_SECONDS) * 1000)

    def simulated_ms(self, origin_ms: int, wall_start_ms: int, elapsed_s: float) -> int:
        """The simulated time `elapsed_s` wall seconds into a run whose simulated time starts
        at `origin_ms` and which started at `wall_start_ms` by the clock: faster than the
        clock, but never ahead of it."""
        fast = origin_ms + elapsed_s * self.speed_multiplier * 1000
        return int(min(fast, wall_start_ms + elapsed_s * 1000))

    def burst_size(self, index: int) -> int:
        """Events in burst `index` (the last burst of an `events` total may be partial)."""
        if self.events:
            return max(0, min(self.batch_size, self.events - index * self.batch_size))
        return self.batch_size

    def due(self, index: int) -> float:
        """Seconds after the start at which burst `index` is due."""
        return index * self.interval_seconds


UNBOUNDED_HEAD_START_SECONDS = 3_600.0
"""The wall time a run without a known end is given to run faster than the clock."""
MAX_HEAD_START_SECONDS = 86_400.0
"""Simulated time starts at most a day back: well within PULSE_CONSUMER_MAX_EVENT_AGE_SECONDS."""


@dataclass(frozen=True)
class Slot:
    """A burst that is due now."""

    index: int
    count: int
    first_seq: int
    elapsed: float
    """Seconds since the start when the burst began."""
    behind: float
    """Seconds the burst started after it was due (0 when on time)."""


class Pacer:
    """Yields bursts when they are due, sleeping in between; the clock is injectable."""

    def __init__(
        self,
        plan: RatePlan,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.plan = plan
        self._clock = clock
        self._sleep = sleep
        self.started: float | None = None

    def elapsed(self) -> float:
        """Seconds since the first burst was due (0 before the run starts)."""
        return 0.0 if self.started is None else self._clock() - self.started

    def __iter__(self) -> Iterator[Slot]:
        self.started = self._clock()
        plan, total, first_seq, index = self.plan, self.plan.total_bursts, 0, 0
        while total is None or index < total:
            wait = plan.due(index) - self.elapsed()
            if wait > 0:
                self._sleep(wait)
            elapsed = self.elapsed()
            if plan.duration_seconds and total is None and elapsed >= plan.duration_seconds:
                return  # back-to-back bursts for a duration: stop once it is spent
            count = plan.burst_size(index)
            yield Slot(index, count, first_seq, elapsed, max(0.0, elapsed - plan.due(index)))
            first_seq += count
            index += 1
