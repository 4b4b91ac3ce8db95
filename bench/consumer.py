"""Consumer throughput, end to end (a pre-filled topic -> totals in MongoDB), three ways:

- consume-only: confluent-kafka reading the topic and doing nothing (this machine's ceiling)
- naive: kafka-python, one `update_one` per message (how many tutorials do it)
- Pulse: the AggregatingConsumer (validate, aggregate, guarded upserts, ledger), in-process
- as users run it (bench/as_run.py): `pulse consume`, and a run of the served drain deployment,
  both with the default alert rules (`--no-as-run` leaves them out)

All read the same topic in the same run, and Pulse's figures are checked against the topic's
own counts for each of its runs. Also reported: documents written per event,
CPU seconds per million events (consumer process, and the database server when it runs
here), and where Pulse's time goes, from its ledger.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import orjson
import psutil
import typer
from confluent_kafka import Consumer
from kafka import KafkaConsumer  # type: ignore[import-untyped]

from bench.as_run import Drained, Target, cli_consume, served_drain
from bench.common import console, fresh_topic, report
from pulse.config import Settings, load_settings
from pulse.generate.pacing import RatePlan
from pulse.generate.run import GeneratorRun
from pulse.generate.simulate import GeneratorConfig
from pulse.pipeline.consumer import consuming
from pulse.stack.services import services
from pulse.store import reads
from pulse.store.client import database, mongo_client
from pulse.store.schema import ITEM_MINUTES, TOTALS, TOTALS_ID


@dataclass
class Run:
    """One contender's measurement."""

    name: str
    events: int
    seconds: float
    cpu_seconds: float | None = None
    db_cpu_seconds: float | None = None
    docs_written: int | None = None
    reported: float | None = None
    """The rate the run printed itself, where it is not the one timed here."""

    @property
    def rate(self) -> float:
        return self.events / self.seconds


def _db_server_cpu(settings: Settings) -> float | None:
    """CPU seconds used so far by the local MongoDB/FerretDB process (None if not ours)."""
    record = services(settings)[1].pidfile.read()
    if record is None:
        return None
    times = psutil.Process(record.pid).cpu_times()
    return times.user + times.system


def _measure(name: str, settings: Settings, events: int, action: Any) -> Run:
    db_before = _db_server_cpu(settings)
    cpu_before, started = time.process_time(), time.perf_counter()
    docs = action()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    db_after = _db_server_cpu(settings)
    db_cpu = db_after - db_before if db_before is not None and db_after is not None else None
    return Run(name, events, seconds, cpu, db_cpu, docs)


def _measure_drained(name: str, settings: Settings, action: Callable[[], Drained]) -> Run:
    """A drain timed by its own runner (bench/as_run.py); its CPU is in other processes."""
    db_before = _db_server_cpu(settings)
    drained = action()
    db_after = _db_server_cpu(settings)
    db_cpu = db_after - db_before if db_before is not None and db_after is not None else None
    return Run(name, drained.records, drained.seconds, None, db_cpu, reported=drained.reported_rate)


def prefill(settings: Settings, topic: str, events: int, users: int, items: int) -> None:
    plan = RatePlan(batch_size=20_000, interval_seconds=0, events=events)
    config = GeneratorConfig(users=users, items=items)
    with GeneratorRun(settings.kafka, plan, config, seed=8, topic=topic) as run:
        for slot in run.slots():
            run.send(slot)
        summary = run.finish()
    if summary.delivered != events:
        raise RuntimeError(f"prefill delivered {summary.delivered} of {events}")


def _reader(settings: Settings, topic: str) -> Consumer:
    """A plain confluent-kafka consumer of the whole topic, in a group of its own."""
    reader = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }
    )
    reader.subscribe([topic])
    return reader


def consume_only(settings: Settings, topic: str, events: int) -> None:
    reader = _reader(settings, topic)
    seen = 0
    try:
        while seen < events:
            seen += sum(1 for m in reader.consume(10_000, 1.0) if m.error() is None)
    finally:
        reader.close()


@dataclass
class Truth:
    """What the topic holds, counted from its records alone (not with Pulse's code)."""

    events: int = 0
    by_user: Counter[str] = field(default_factory=Counter)
    by_item: Counter[str] = field(default_factory=Counter)


def truth(settings: Settings, topic: str, events: int) -> Truth:
    """Count the topic's records by user and item, as they were sent."""
    reader = _reader(settings, topic)
    found = Truth()
    try:
        while found.events < events:
            for message in reader.consume(10_000, 1.0):
                if message.error() is None:
                    event = orjson.loads(message.value() or b"")
                    found.events += 1
                    found.by_user[event["user_id"]] += 1
                    found.by_item[event["item_id"]] += 1
    finally:
        reader.close()
    return found


def exactness(settings: Settings, db_name: str, expected: Truth) -> dict[str, bool]:
    """Pulse's figures against the topic's own counts: every event once, per user, per item
    and per item x minute."""
    with mongo_client(settings.mongo) as client:
        db = client[db_name]
        totals = db[TOTALS].find_one({"_id": TOTALS_ID}) or {}
        by_user = Counter(reads.user_totals(db))
        by_item = Counter(reads.item_totals(db))
        by_item_minute: Counter[str] = Counter()
        for bucket in db[ITEM_MINUTES].find({}, {"i": 1}):
            by_item_minute.update({item: f["total"] for item, f in bucket.get("i", {}).items()})
    return {
        "events": totals.get("events") == expected.events,
        "distinct users": totals.get("users") == len(expected.by_user),
        "distinct items": totals.get("items") == len(expected.by_item),
        "per user": by_user == expected.by_user,
        "per item": by_item == expected.by_item,
        "per item x minute (summed per item)": by_item_minute == expected.by_item,
    }


def naive(settings: Settings, topic: str, events: int, db_name: str) -> int:
    """The common way: one message at a time, one database round trip per message."""
    reader = KafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        group_id=f"bench-naive-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
    )
    with mongo_client(settings.mongo) as client:
        items = client[db_name].items
        seen = 0
        for message in reader:
            event = orjson.loads(message.value)
            items.update_one(
                {"_id": event["item_id"]},
                {"$inc": {"total": 1, f"types.{event['interaction_type']}": 1}},
                upsert=True,
            )
            seen += 1
            if seen >= events:
                break
    reader.close()
    return seen


def pulse(settings: Settings, target: Target, events: int) -> int:
    db_name = target.db_name
    configured = load_settings(
        kafka=settings.kafka.model_dump()
        | {"topic": target.topic, "consumer_group": f"bench-{db_name}"},
        mongo=settings.mongo.model_dump()
        | {
            "database": db_name,
            "user_buckets": target.user_buckets,
            "item_buckets": target.item_buckets,
        },
        consumer=settings.consumer.model_dump() | {"max_batch_events": target.batch},
        alerts={"rules_file": Path("/nonexistent")},  # alerting is measured elsewhere
    )
    applied = 0
    with consuming(configured) as consumer:
        while applied < events:
            polled = time.monotonic()
            found = consumer.poll_batch(target.batch, 2.0)
            if found is not None:
                applied += consumer.process(found, time.monotonic() - polled).records
    with mongo_client(configured.mongo) as client:
        ledger = list(database(client, configured.mongo).ledger.find())
    return sum(int(entry.get("docs_written", 0)) for entry in ledger)


def stages(settings: Settings, db_name: str) -> dict[str, dict[str, float]]:
    """Totals over the ledger: seconds per stage and per write step, documents per collection."""
    totals: dict[str, dict[str, float]] = {"seconds": {}, "step_seconds": {}, "docs": {}}
    with mongo_client(settings.mongo) as client:
        for entry in client[db_name].ledger.find():
            for kind, sums in totals.items():
                for name, value in entry.get(kind, {}).items():
                    sums[name] = sums.get(name, 0.0) + float(value)
    return totals


def main(
    events: Annotated[
        int, typer.Option(help="Events in the topic (Pulse and consume-only).")
    ] = 300_000,
    naive_events: Annotated[
        int, typer.Option(help="Events the naive consumer processes.")
    ] = 10_000,
    users: Annotated[int, typer.Option(help="Distinct users.")] = 10_000,
    items: Annotated[int, typer.Option(help="Distinct items.")] = 1_000,
    batch: Annotated[int, typer.Option(help="Pulse's micro-batch size.")] = 50_000,
    name: Annotated[
        str, typer.Option(help="Result name (bench/results/<name>.json).")
    ] = "consumer",
    user_buckets: Annotated[
        int | None, typer.Option(help="User buckets (default PULSE_MONGO_USER_BUCKETS).")
    ] = None,
    item_buckets: Annotated[
        int | None,
        typer.Option(help="Item x minute buckets a minute (default PULSE_MONGO_ITEM_BUCKETS)."),
    ] = None,
    as_run: Annotated[
        bool, typer.Option(help="Also `pulse consume` and a served drain run (bench/as_run.py).")
    ] = True,
) -> dict[str, Any]:
    """Measure and print; write bench/results/consumer.json."""
    settings = load_settings()
    buckets = user_buckets or settings.mongo.user_buckets
    item_buckets = item_buckets or settings.mongo.item_buckets
    db_name = f"bench_{uuid.uuid4().hex[:8]}"
    naive_db = f"{db_name}_naive"
    with fresh_topic(settings, "consumer") as topic:
        console.print(f"prefilling {topic} with {events:,} events")
        prefill(settings, topic, events, users, items)
        # The ceiling is the faster of two reads: once, right after the prefill, a read ran at a
        # sixth of its usual speed, which would have flattered every ratio against it.
        ceilings = [
            _measure(
                "consume-only (confluent-kafka, faster of two reads)",
                settings,
                events,
                lambda: consume_only(settings, topic, events),
            )
            for _ in range(2)
        ]
        runs = [
            max(ceilings, key=lambda run: run.rate),
            _measure(
                f"naive (kafka-python, update_one per message; {naive_events:,} events)",
                settings,
                naive_events,
                lambda: naive(settings, topic, naive_events, naive_db),
            ),
            _measure(
                "pulse",
                settings,
                events,
                lambda: pulse(
                    settings, Target(topic, db_name, batch, buckets, item_buckets), events
                ),
            ),
        ]
        drains = {
            "pulse consume (alerts on)": cli_consume,
            "served drain run (alerts on)": served_drain,
        }
        as_run_dbs = [f"{db_name}_{n}" for n in range(len(drains))] if as_run else []
        for (label, drain), db in zip(drains.items(), as_run_dbs, strict=False):
            target = Target(topic, db, batch, buckets, item_buckets)
            runs.append(_measure_drained(label, settings, partial(drain, settings, target)))
        expected = truth(settings, topic, events)
    ledger_totals = stages(settings, db_name)
    exact = exactness(settings, db_name, expected)
    as_run_exact = {
        run.name: exactness(settings, db, expected)
        for run, db in zip(runs[3:], as_run_dbs, strict=True)
    }
    time_by_stage = ledger_totals["seconds"]
    with mongo_client(settings.mongo) as client:
        for db in [db_name, naive_db, *as_run_dbs]:
            client.drop_database(db)
    ceiling, naive_rate, pulse_run = runs[0].rate, runs[1].rate, runs[2]
    rows = [
        {
            "contender": run.name,
            "events/s": run.rate,
            "vs naive": run.rate / naive_rate,
            "vs consume-only": run.rate / ceiling,
            "vs in-process": run.rate / pulse_run.rate,
            "reported events/s": run.reported or run.rate,
            "consumer CPU s / 1M": None
            if run.cpu_seconds is None
            else run.cpu_seconds / run.events * 1e6,
            "database CPU s / 1M": (run.db_cpu_seconds or 0.0) / run.events * 1e6,
        }
        for run in runs
    ]
    total = sum(time_by_stage.values()) or 1.0
    share = {stage: seconds / total for stage, seconds in time_by_stage.items()}
    extra: dict[str, Any] = {
        "events": events,
        "users": users,
        "items": items,
        "batch": batch,
        "user_buckets": buckets,
        "item_buckets": item_buckets,
        "docs_per_event": (pulse_run.docs_written or 0) / events,
        "stage_seconds": time_by_stage,
        "write_step_seconds": ledger_totals["step_seconds"],
        "docs_per_event_by_collection": {
            name: count / events for name, count in ledger_totals["docs"].items()
        },
        "stage_share": share,
        "exact": exact,
        "as_run_exact": as_run_exact,
        "pulse_without_writes_events_per_s": events
        / max(total - time_by_stage.get("write", 0.0), 1e-9),
    }
    report(name, rows, extra)
    console.print(
        f"documents written per event: {extra['docs_per_event']:.3f}; time by stage: "
        + ", ".join(f"{k} {v:.0%}" for k, v in share.items())
    )
    steps = ledger_totals["step_seconds"]
    written = sum(steps.values()) or 1.0
    console.print("write steps: " + ", ".join(f"{k} {v / written:.0%}" for k, v in steps.items()))
    console.print(
        "documents per event: "
        + ", ".join(f"{k} {v:.3f}" for k, v in extra["docs_per_event_by_collection"].items() if v)
    )
    for label, checks in {"pulse": exact, **as_run_exact}.items():
        wrong = [check for check, right in checks.items() if not right]
        console.print(
            f"exact ({label}): " + ("every check" if not wrong else "NOT " + ", ".join(wrong))
        )
    return {"rows": rows, **extra}


if __name__ == "__main__":
    typer.run(main)
