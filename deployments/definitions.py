"""The deployments of Pulse, defined once: `serve.py` serves them (`make run`) and
`prefect_yaml.py` writes them as prefect.yaml for work pools.

- generate-interactions/stream   streams without a gap: each run owns one 60 s window
- generate-interactions/manual   no schedule, no limit: `pulse trigger generate --events 100000`
- aggregate-interactions/drain   drains without a gap: each run owns one 120 s window, then
                                 hands its partitions to the next run (one consumer group)
- retry-failed-batches/manual    no schedule: run it from the UI or `pulse trigger retry`
- replay-dead-letters/manual     no schedule: `pulse trigger replay-dead-letters --reason ...`
- resolve-lost-batch/manual      no schedule: what `pulse ledger resolve <id>` does
- maintain-store/scheduled       every 10 minutes (PULSE_RETENTION_PASS_MINUTES): `pulse maintain`

Scheduled runs size themselves from their scheduled start
(pulse/pipeline/schedule_windows.py): a run starts early, waits for its window and ends when
the next run's window begins, so no run is cancelled for overlapping the next. Hence a limit
of 2 live runs (the working one and its successor); a run due while 2 are live is cancelled,
not queued, so after an outage late runs do not pile up. Parameters left out resolve from the
PULSE_* settings when a run starts.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import Flow

from flows.aggregate import aggregate_interactions
from flows.generate import generate_interactions
from flows.maintain import maintain_store
from flows.replay import replay_dead_letters
from flows.resolve import resolve_lost_batch
from flows.retry import retry_failed_batches
from pulse.config import GeneratorSettings, RetentionSettings

REPO = Path(__file__).resolve().parents[1]
DRAIN = "aggregate-interactions/drain"
"""The scheduled consumer deployment (deployments/automations.py retries its failed runs)."""
RETRY = "retry-failed-batches/manual"
GENERATOR_EVERY = timedelta(seconds=60)
CONSUMER_EVERY = timedelta(seconds=120)


@dataclass(frozen=True)
class Definition:
    """One deployment: a flow, its name, schedule, concurrency limit and parameters."""

    flow: Flow[..., Any]
    name: str
    description: str
    tags: tuple[str, ...]
    every: timedelta | None = None
    limit: int | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def full_name(self) -> str:
        return f"{self.flow.name}/{self.name}"

    @property
    def entrypoint(self) -> str:
        """`path/to/file.py:function`, relative to the repository (what `prefect deploy` wants)."""
        source = Path(inspect.getfile(self.flow.fn)).resolve().relative_to(REPO)
        return f"{source.as_posix()}:{self.flow.fn.__name__}"


def stream_params(generator: GeneratorSettings) -> dict[str, Any]:
    """What the scheduled stream sends besides plain traffic: a few malformed records, a hot
    item now and then, and users taking turns, so dead letters, alerts and sessions that end
    show in the default run."""
    return {
        "malformed_fraction": generator.malformed_fraction,
        "hot_item": generator.hot_item,
        "hot_share": generator.hot_share,
        "hot_cycle_minutes": generator.hot_cycle_minutes,
        "active_share": generator.active_share,
        "visit_minutes": generator.visit_minutes,
    }


def definitions(generator: GeneratorSettings, retention: RetentionSettings) -> list[Definition]:
    """Every deployment; the stream's parameters from the generator settings, the retention
    pass's interval from the retention settings."""
    return [
        Definition(
            generate_interactions,
            "stream",
            "Simulated user interactions, produced to Kafka in paced bursts.",
            ("pulse", "generator"),
            every=GENERATOR_EVERY,
            limit=2,
            parameters={
                "params": stream_params(generator),
                "window_seconds": GENERATOR_EVERY.total_seconds(),
            },
        ),
        Definition(
            generate_interactions,
            "manual",
            "Ad-hoc bursts; runs alongside the scheduled stream.",
            ("pulse", "generator"),
        ),
        Definition(
            aggregate_interactions,
            "drain",
            "Micro-batches from Kafka aggregated into MongoDB, exactly once.",
            ("pulse", "consumer"),
            every=CONSUMER_EVERY,
            limit=2,
            parameters={"window_seconds": CONSUMER_EVERY.total_seconds()},
        ),
        Definition(
            retry_failed_batches,
            "manual",
            "Re-apply failed or interrupted micro-batches over their offsets.",
            ("pulse", "recovery"),
            limit=1,
        ),
        Definition(
            replay_dead_letters,
            "manual",
            "Re-ingest selected (fixed) dead letters exactly once.",
            ("pulse", "recovery"),
            limit=1,
        ),
        Definition(
            maintain_store,
            "scheduled",
            "Remove what is past its retention: finished ledger entries, dead letters, alerts, "
            "per-minute detail.",
            ("pulse", "maintenance"),
            every=timedelta(minutes=retention.pass_minutes),
            limit=2,  # as the other schedules: a long pass is joined by the next, not cancelled
        ),
        Definition(
            resolve_lost_batch,
            "manual",
            "Record a batch Kafka can no longer replay as lost, so its partitions count on.",
            ("pulse", "recovery"),
            limit=1,
        ),
    ]
