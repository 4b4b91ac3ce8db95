"""Flow `generate-interactions`: paced bursts of simulated interactions into Kafka."""

from __future__ import annotations

from typing import Annotated, Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field

from flows.policies import GENERATE_TIMEOUT_SECONDS, HANDOVER_SECONDS, run_name, wait_for_window
from pulse.generate.params import GeneratorParams
from pulse.generate.run import summary_markdown, summary_row
from tasks.generate import produce_interactions


@flow(
    name="generate-interactions",
    flow_run_name=run_name,
    timeout_seconds=GENERATE_TIMEOUT_SECONDS,
)
def generate_interactions(
    params: GeneratorParams | None = None,
    window_seconds: Annotated[float, Field(gt=0)] | None = None,
    handover_seconds: Annotated[float, Field(ge=0)] = HANDOVER_SECONDS,
    ground_truth_path: str | None = None,
) -> dict[str, Any]:
    """Produce simulated interactions at a set rate; unset values come from PULSE_GENERATOR_*.

    `params` gives one total (`events`, `bursts` or `duration_seconds`; default 10 bursts).
    With `window_seconds` (the schedule's interval) the run streams for exactly its window of
    the schedule instead, so consecutive runs stream without a gap
    (pulse/pipeline/schedule_windows.py).
    """
    logger = get_run_logger()
    params = params or GeneratorParams()
    window = None
    if window_seconds is not None:
        window, seconds = wait_for_window(window_seconds, handover_seconds)
        if seconds <= 0:
            logger.warning("window %s-%s is over: nothing to send", window.start, window.end)
            return {"events": 0, "window": window.as_dict()}
        logger.info("streaming in window %s-%s", window.start.time(), window.end.time())
        params = params.for_window(seconds)
    summary = produce_interactions(params, ground_truth_path)
    create_markdown_artifact(
        markdown=summary_markdown(summary),
        key="generator-run",
        description=f"Generator run {summary.run_id}",
    )
    create_table_artifact(
        table=[summary_row(summary)],
        key="generator-sent",
        description=f"What generator run {summary.run_id} sent",
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
