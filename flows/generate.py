"""Flow `generate-interactions`: paced bursts of simulated interactions into Kafka."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import Field

from flows.policies import HANDOVER_SECONDS, wait_for_window
from pulse.config import load_settings
from pulse.generate.pacing import Slot
from pulse.generate.run import BurstReport, GeneratorRun, plan_and_config, summary_markdown

Fraction = Annotated[float, Field(ge=0, le=1)]


@task(task_run_name="burst-{slot.index}", cache_policy=NO_CACHE)
def send_burst(run: GeneratorRun, slot: Slot) -> BurstReport:
    """Generate one burst and queue it for delivery (no retries: a resend would duplicate)."""
    return run.send(slot)


@flow(name="generate-interactions")
def generate_interactions(
    batch_size: Annotated[int, Field(ge=1)] | None = None,
    interval_seconds: Annotated[float, Field(ge=0)] | None = None,
    speed_multiplier: Annotated[float, Field(gt=0)] | None = None,
    events: Annotated[int, Field(ge=1)] | None = None,
    bursts: Annotated[int, Field(ge=1)] | None = None,
    duration_seconds: Annotated[float, Field(gt=0)] | None = None,
    seed: int | None = None,
    users: Annotated[int, Field(ge=1)] | None = None,
    items: Annotated[int, Field(ge=1)] | None = None,
    late_fraction: Fraction = 0.0,
    malformed_fraction: Fraction = 0.0,
    hot_item: str | None = None,
    hot_share: Annotated[float, Field(ge=0, lt=1)] = 0.0,
    hot_every: Annotated[int, Field(ge=1)] = 1,
    hot_cycle_minutes: Annotated[int, Field(ge=0)] = 0,
    topic: str | None = None,
    ground_truth_path: str | None = None,
    window_seconds: Annotated[float, Field(gt=0)] | None = None,
    handover_seconds: Annotated[float, Field(ge=0)] = HANDOVER_SECONDS,
) -> dict[str, Any]:
    """Produce simulated interactions at a set rate; unset values come from PULSE_GENERATOR_*.

    Give one total: `events`, `bursts` or `duration_seconds` (default: 10 bursts). With
    `window_seconds` (the schedule's interval) the run streams for exactly its window of the
    schedule instead, so consecutive runs stream without a gap (pulse/pipeline/windows.py).
    """
    logger = get_run_logger()
    settings = load_settings()
    defaults = settings.generator
    window = None
    if window_seconds is not None:
        window, duration_seconds = wait_for_window(window_seconds, handover_seconds)
        if duration_seconds <= 0:
            logger.warning("window %s-%s is over: nothing to send", window.start, window.end)
            return {"events": 0, "window": window.as_dict()}
        logger.info("streaming in window %s-%s", window.start.time(), window.end.time())
        events = bursts = None
    no_total = events is None and bursts is None and duration_seconds is None
    plan, config = plan_and_config(
        defaults,
        batch_size=batch_size,
        interval_seconds=interval_seconds,
        speed_multiplier=speed_multiplier,
        events=events,
        bursts=10 if no_total else bursts,
        duration_seconds=duration_seconds,
        users=users,
        items=items,
        late_fraction=late_fraction,
        malformed_fraction=malformed_fraction,
        hot_item=hot_item,
        hot_share=hot_share,
        hot_every=hot_every,
        hot_cycle_minutes=hot_cycle_minutes,
    )
    run = GeneratorRun(
        settings.kafka,
        plan,
        config,
        seed=defaults.seed if seed is None else seed,
        topic=topic,
        ground_truth_path=Path(ground_truth_path) if ground_truth_path else None,
    )
    logger.info(
        "run %s (seed %d): %s events in bursts of %d every %.2f s to topic %s",
        run.run_id,
        run.seed,
        plan.total_events or "unbounded",
        plan.batch_size,
        plan.interval_seconds,
        run.topic,
    )
    with run:
        for slot in run.slots():
            send_burst(run, slot)
        summary = run.finish()
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key="generator-run",
        description=f"Generator run {summary.run_id}",
    )
    logger.info(
        "sent %d events (+%d malformed) at %.0f records/s",
        summary.events,
        summary.malformed,
        summary.achieved_rate,
    )
    if summary.failed or summary.undelivered:
        raise RuntimeError(
            f"{summary.failed} records failed and {summary.undelivered} were undelivered: "
            f"{summary.delivery_errors}"
        )
    return summary.to_dict() | ({"window": window.as_dict()} if window else {})
