"""Schedule windows: how runs of a scheduled deployment share wall-clock time without gaps (pure).

A deployment scheduled every `every` seconds gives run k the window
``[scheduled_k + handover, scheduled_k + every + handover)``. Windows of consecutive runs touch
end to start, so the generator streams and some consumer drains all the time, whatever each
run's start-up costs, as long as it starts within `handover` seconds of its scheduled time
(flow-run start-up varies from run to run; the handover absorbs it). A run that starts early
waits for its window; one that starts late works for what is left of it; one whose window is
over ends at once, Completed. So at most two runs of a deployment live at a time: the one working
and its successor getting ready, and the concurrency limit is 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Window:
    """The wall-clock time one run owns."""

    start: datetime
    end: datetime

    def wait_before(self, now: datetime) -> float:
        """Seconds to wait until the window starts (0 once it has)."""
        return max(0.0, (self.start - now).total_seconds())

    def as_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}

    def remaining(self, now: datetime) -> float:
        """Seconds of work left from `now` (0 when the window is over)."""
        return max(0.0, (self.end - max(now, self.start)).total_seconds())


def window_of(scheduled: datetime, every_seconds: float, handover_seconds: float) -> Window:
    """The window of a run scheduled at `scheduled` in a schedule with that interval."""
    start = scheduled + timedelta(seconds=handover_seconds)
    return Window(start, start + timedelta(seconds=every_seconds))
