"""Task of the generator flow: one paced run of simulated interactions into Kafka."""

from __future__ import annotations

import time
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from pulse.config import load_settings
from pulse.generate.params import GeneratorParams
from pulse.generate.run import GeneratorRun, RunSummary

PROGRESS_EVERY_SECONDS = 15.0


# Sends records: never replaced by a cached result (NO_CACHE), and never retried, because a
# resend would count the same interactions twice.
@task(cache_policy=NO_CACHE)
def produce_interactions(
    params: GeneratorParams, ground_truth_path: str | None = None
) -> RunSummary:
    """Produce the run's bursts on their schedule; logs progress every 15 s."""
    logger = get_run_logger()
    settings = load_settings()
    run = GeneratorRun.planned(
        settings, params, ground_truth_path=Path(ground_truth_path) if ground_truth_path else None
    )
    plan = run.plan
    logger.info(
        "run %s (seed %d): %s events in bursts of %d every %.2f s to topic %s",
        run.run_id,
        run.seed,
        plan.total_events or "unbounded",
        plan.batch_size,
        plan.interval_seconds,
        run.topic,
    )
    reported = time.monotonic()
    with run:
        for slot in run.slots():
            run.send(slot)
            if time.monotonic() - reported >= PROGRESS_EVERY_SECONDS:
                reported = time.monotonic()
                logger.info("%d events sent in %d bursts", run.events, run.bursts)
        return run.finish()
