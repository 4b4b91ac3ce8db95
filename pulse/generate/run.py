"""One generator run: paced bursts of simulated interactions produced to Kafka.

Used by the `generate-interactions` flow (each burst a task) and by `pulse generate`.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from pulse.config import KafkaSettings, Settings
from pulse.generate.pacing import Pacer, RatePlan, Slot
from pulse.generate.params import GeneratorParams
from pulse.generate.simulate import Burst, GeneratorConfig, InteractionGenerator
from pulse.ingest.ground_truth import GroundTruth, Tally, tally
from pulse.kafka.clients import ensure_topic
from pulse.kafka.producer import InteractionProducer
from pulse.preflight import check_kafka

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BurstReport:
    """What one burst sent."""

    index: int
    events: int
    malformed: int
    behind_seconds: float


@dataclass(frozen=True)
class RunSummary:
    """What a run sent and how fast; the flow's artifact and the CLI's last lines."""

    run_id: str
    seed: int
    topic: str
    bursts: int
    events: int
    malformed: int
    late: int
    records: int
    delivered: int
    failed: int
    undelivered: int
    elapsed_seconds: float
    requested_rate: float | None
    achieved_rate: float
    max_behind_seconds: float
    buffer_full_waits: int
    by_type: dict[str, int] = field(default_factory=dict)
    delivery_errors: dict[str, int] = field(default_factory=dict)
    ground_truth_path: str | None = None

    @property
    def fell_behind(self) -> bool:
        """True when the requested rate was not reached (the broker or machine is the limit)."""
        return self.requested_rate is not None and self.achieved_rate < 0.95 * self.requested_rate

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fell_behind": self.fell_behind}


def summary_row(summary: RunSummary) -> dict[str, Any]:
    """The run as one row of a table: counts by outcome and by type, rates."""
    row = {
        "run_id": summary.run_id,
        "events": summary.events,
        "malformed": summary.malformed,
        "delivered": summary.delivered,
        "failed": summary.failed,
        "undelivered": summary.undelivered,
        "seconds": round(summary.elapsed_seconds, 1),
        "records_per_second": round(summary.achieved_rate),
    }
    return row | {f"type_{kind}": count for kind, count in sorted(summary.by_type.items())}


class GeneratorRun:
    """Generates and produces bursts on a schedule, keeping the ground truth of what was sent."""

    def __init__(
        self,
        kafka: KafkaSettings,
        plan: RatePlan,
        config: GeneratorConfig,
        *,
        seed: int | None = None,
        run_id: str | None = None,
        topic: str | None = None,
        now: datetime | None = None,
        ground_truth_path: Path | None = None,
        pacer: Pacer | None = None,
        producer_overrides: Mapping[str, object] | None = None,
    ) -> None:
        self.kafka = kafka
        self.plan = plan
        self.seed = seed if seed is not None else secrets.randbits(32)
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.topic = topic or kafka.topic
        self.generator = InteractionGenerator(config, self.seed, self.run_id)
        self.producer = InteractionProducer(kafka, self.topic, **(producer_overrides or {}))
        # The detailed ground truth costs four group-bys per burst: only kept when asked for.
        self.truth = GroundTruth() if ground_truth_path else None
        self.ground_truth_path = ground_truth_path
        self.events = 0
        self.malformed = 0
        self.late = 0
        self.by_type: Counter[str] = Counter()
        self.pacer = pacer or Pacer(plan)
        self.wall_start_ms = int(datetime.now(UTC).timestamp() * 1000)
        self.origin_ms = (
            int(now.timestamp() * 1000) if now else self.wall_start_ms - plan.head_start_ms()
        )
        """Where simulated time starts: `now`, or early enough for time running faster than
        the clock to reach the present as the run ends (RatePlan.head_start_ms)."""
        self.bursts = 0
        self.max_behind = 0.0
        self._last_burst_seconds = 0.0
        self._warned_behind = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="generate")
        self._pending: tuple[tuple[int, int, int], Future[tuple[Burst, Tally | None]]] | None = None

    @classmethod
    def planned(
        cls,
        settings: Settings,
        params: GeneratorParams,
        *,
        ground_truth_path: Path | None = None,
    ) -> GeneratorRun:
        """A run of `params`, unset values from the PULSE_GENERATOR_* settings.

        Raises pydantic.ValidationError naming each bad value.
        """
        plan, config = params.plan(settings.generator)
        return cls(
            settings.kafka,
            plan,
            config,
            seed=params.seed_or(settings.generator),
            topic=params.topic,
            ground_truth_path=ground_truth_path,
        )

    def __enter__(self) -> Self:
        check_kafka(self.kafka)
        ensure_topic(self.kafka, self.topic)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.producer.flush()  # also on Ctrl-C or errors: what was queued still gets delivered

    def slots(self) -> Pacer:
        """The bursts, each yielded when it is due."""
        return self.pacer

    def send(self, slot: Slot) -> BurstReport:
        """Queue burst `slot` for delivery, and start generating the next one meanwhile.

        Generation (NumPy/Polars, which release the GIL) of burst k+1 overlaps the produce
        loop of burst k, so the two cores are both busy.
        """
        prepared = self._take(slot.index, slot.first_seq, slot.count)
        following = slot.index + 1
        total = self.plan.total_bursts
        if total is None or following < total:
            count = self.plan.burst_size(following)
            self._pending = (
                (following, slot.first_seq + slot.count, count),
                self._pool.submit(self._prepare, following, slot.first_seq + slot.count, count),
            )
        burst, counts = prepared
        self.producer.send(burst.keys, burst.payloads)
        self.events += burst.events.height
        self.malformed += burst.malformed
        self.late += burst.late
        self.by_type.update(burst.by_type)
        if self.truth is not None and counts is not None:
            self.truth.add_tally(counts, malformed=burst.malformed, late=burst.late)
        self.bursts += 1
        self.max_behind = max(self.max_behind, slot.behind)
        self._last_burst_seconds = self.pacer.elapsed() - slot.elapsed
        self._warn_if_behind(slot)
        return BurstReport(slot.index, burst.events.height, burst.malformed, slot.behind)

    def _take(self, index: int, first_seq: int, count: int) -> tuple[Burst, Tally | None]:
        """The prepared burst if it was prefetched for exactly this slot, else prepare it now."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == (index, first_seq, count):
            return pending[1].result()
        return self._prepare(index, first_seq, count)

    def _prepare(self, index: int, first_seq: int, count: int) -> tuple[Burst, Tally | None]:
        """Generate burst `index` on the simulated clock (and count it, if truth is kept)."""
        if self.plan.interval_seconds:
            start_s, span_s = self.plan.due(index), self.plan.interval_seconds
        else:  # back-to-back bursts: simulated time follows the wall clock
            start_s, span_s = self.pacer.elapsed(), self._last_burst_seconds
        start_ms = self.plan.simulated_ms(self.origin_ms, self.wall_start_ms, start_s)
        end_ms = self.plan.simulated_ms(self.origin_ms, self.wall_start_ms, start_s + span_s)
        burst = self.generator.burst(
            first_seq=first_seq,
            count=count,
            start_ms=start_ms,
            span_ms=end_ms - start_ms,
            hot=self.generator.config.is_hot(index, start_ms),
        )
        return burst, tally(burst.events) if self.truth is not None else None

    def _warn_if_behind(self, slot: Slot) -> None:
        if not self.plan.interval_seconds:
            return  # back-to-back bursts have no schedule to fall behind
        if self._warned_behind or slot.behind <= max(self.plan.interval_seconds, 1.0):
            return
        self._warned_behind = True
        achieved = self.events / max(self.pacer.elapsed(), 1e-9)
        log.warning(
            "falling behind schedule by %.1f s: requested %.0f events/s, achieving %.0f; "
            "the broker or this machine is the limit",
            slot.behind,
            self.plan.requested_rate,
            achieved,
        )

    def finish(self, flush_timeout: float = 60.0) -> RunSummary:
        """Wait for every delivery, write the ground truth, and summarise the run."""
        undelivered = self.producer.flush(flush_timeout)
        elapsed = self.pacer.elapsed()
        # A run of n bursts every i seconds occupies n*i seconds, even if the last burst is quick.
        span = max(elapsed, self.bursts * self.plan.interval_seconds, 1e-9)
        if self.truth is not None and self.ground_truth_path:
            self.truth.write(self.ground_truth_path)
        rate = self.plan.requested_rate
        return RunSummary(
            run_id=self.run_id,
            seed=self.seed,
            topic=self.topic,
            bursts=self.bursts,
            events=self.events,
            malformed=self.malformed,
            late=self.late,
            records=self.producer.produced,
            delivered=self.producer.delivered,
            failed=self.producer.failed,
            undelivered=undelivered,
            elapsed_seconds=round(elapsed, 3),
            requested_rate=None if rate == float("inf") else rate,
            achieved_rate=round(self.producer.delivered / span, 1),
            max_behind_seconds=round(self.max_behind, 3),
            buffer_full_waits=self.producer.buffer_full_waits,
            by_type={kind: count for kind, count in sorted(self.by_type.items()) if count},
            delivery_errors=dict(self.producer.errors),
            ground_truth_path=str(self.ground_truth_path) if self.ground_truth_path else None,
        )


def summary_markdown(summary: RunSummary) -> str:
    """The run summary as a Markdown report (Prefect artifact)."""
    requested = (
        f"{summary.requested_rate:,.0f}" if summary.requested_rate else "as fast as possible"
    )
    rows = [
        ("run id / seed", f"`{summary.run_id}` / `{summary.seed}`"),
        ("topic", f"`{summary.topic}`"),
        ("bursts", f"{summary.bursts:,}"),
        ("events sent (valid)", f"{summary.events:,}"),
        ("malformed records sent", f"{summary.malformed:,}"),
        ("late events", f"{summary.late:,}"),
        (
            "records delivered / failed / undelivered",
            f"{summary.delivered:,} / {summary.failed:,} / {summary.undelivered:,}",
        ),
        ("requested rate (records/s)", requested),
        ("achieved rate (records/s)", f"{summary.achieved_rate:,.0f}"),
        ("elapsed", f"{summary.elapsed_seconds:.1f} s"),
        ("max lag behind schedule", f"{summary.max_behind_seconds:.2f} s"),
    ]
    lines = ["# Generator run", "", "| | |", "|---|---|"]
    lines += [f"| {name} | {value} |" for name, value in rows]
    lines += ["", "| interaction type | events |", "|---|---|"]
    lines += [f"| {kind} | {count:,} |" for kind, count in sorted(summary.by_type.items())]
    if summary.fell_behind:
        lines += [
            "",
            "**Fell behind the requested rate: the broker or this machine is the limit.**",
        ]
    if summary.delivery_errors:
        lines += ["", f"Delivery errors: {summary.delivery_errors}"]
    return "\n".join(lines) + "\n"
