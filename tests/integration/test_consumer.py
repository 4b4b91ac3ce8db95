"""The consumer on the real broker and database: exact totals through bad data, replays, crashes."""

from __future__ import annotations

import operator
import random
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from flows.aggregate import aggregate_interactions
from pulse.config import Settings
from pulse.ingest.batch import OffsetRange
from pulse.pipeline.apply import STEPS
from pulse.pipeline.consumer import AggregatingConsumer, consuming, replay_entry
from pulse.pipeline.drain import DrainSummary, drain
from pulse.pipeline.entities import backlog
from pulse.pipeline.isolation import IsolatingFlushes
from pulse.pipeline.opening import open_pipeline
from pulse.store import writes
from pulse.store.client import database, mongo_client
from pulse.store.reads import entity_progress, stored_offsets
from pulse.store.schema import DEAD_LETTERS, LEDGER, TOTALS, TOTALS_ID, USER_BUCKETS
from tests.integration.reconcile import (
    assert_matches_truth,
    drain_until_caught_up,
    produce,
    snapshot,
    subprocess_env,
    use_settings_env,
    wait_for_events,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_flow_drains_and_every_figure_equals_ground_truth(
    pipeline: Settings, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=30_000)
    assert truth["malformed"] > 0 and truth["late"] > 0
    use_settings_env(monkeypatch, pipeline)

    result = aggregate_interactions(time_budget_seconds=300, max_batch_events=8_000)

    assert result["records"] == truth["events"] + truth["malformed"]
    assert result["dead_lettered"] == truth["malformed"]
    assert result["caught_up"] is True
    assert set(result["lag"].values()) == {0}
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        assert_matches_truth(db, truth)
        reasons = [doc["reason"] for doc in db[DEAD_LETTERS].find({}, {"reason": 1})]
        assert all(reasons) and any("not valid JSON" in reason for reason in reasons)
        sample = db[DEAD_LETTERS].find_one()
        assert sample is not None and isinstance(sample["raw"], bytes)
        ledger = list(db[LEDGER].find({}))
        assert ledger and all(entry["status"] == "applied" for entry in ledger)
        batches = [entry for entry in ledger if "kind" not in entry]
        flushes = [entry for entry in ledger if entry.get("kind") == writes.ENTITY_FLUSH]
        assert len(batches) + len(flushes) == len(ledger) and flushes
        assert all({"validate", "aggregate", "write"} <= set(e["seconds"]) for e in batches)
        assert all({"aggregate", "write", "alerts"} <= set(e["seconds"]) for e in flushes)
        offsets = stored_offsets(db, pipeline.kafka.topic)
        assert sum(offsets.values()) == truth["events"] + truth["malformed"]
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["consumer-run"])),
            sort=ArtifactSort.CREATED_DESC,
            limit=50,  # other test files' runs write theirs to the same server meanwhile
        )
    assert any(pipeline.kafka.topic in str(artifact.data) for artifact in artifacts)


def test_replaying_applied_offset_ranges_changes_nothing(
    pipeline: Settings, tmp_path: Path
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=12_000)
    drain_until_caught_up(pipeline, max_batch_events=6_000)
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        before = snapshot(db)
        entries = list(db[LEDGER].find({}))
        with open_pipeline(pipeline) as opened:
            for entry in entries:
                report = replay_entry(opened, entry, pipeline.kafka.consumer_group)
                assert report.docs_written == 0
                assert report.already_applied > 0
        assert snapshot(db) == before
        assert_matches_truth(db, truth)


class SimulatedCrashError(RuntimeError):
    """Stands for the process dying at a given point of a batch's write."""


def test_a_crash_at_any_step_of_a_write_leaves_totals_exact(
    pipeline: Settings, tmp_path: Path
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=24_000)
    # A crash after every named step of writing a batch and its entity flush
    # (pulse/pipeline/apply.py; here every batch is flushed at once), each in a fresh
    # consumer: the next one first replays what is unfinished, then reads on.
    flushing_every_batch = _flush_every(pipeline, seconds=0)
    for step in STEPS:

        def crash_after(done: str, _step: str = step) -> None:
            if done == _step:
                raise SimulatedCrashError(f"after step {_step}")

        with (
            pytest.raises(SimulatedCrashError),
            consuming(flushing_every_batch, after_step=crash_after) as consumer,
        ):
            while True:
                batch = consumer.poll_batch(3_000, 2.0)
                if batch is not None:
                    consumer.process(batch)

    drain_until_caught_up(pipeline, max_batch_events=6_000)
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        assert_matches_truth(db, truth)
        # Every crash but the ones after a ledger entry's last step ('ledger-applied',
        # 'flush-applied') left a batch or flush that the next consumer replayed (and,
        # crashing again one step later, left for the next).
        extra_attempts = sum(entry["attempts"] - 1 for entry in db[LEDGER].find({}))
        assert extra_attempts >= len(STEPS) - 2


def _flush_every(settings: Settings, seconds: float) -> Settings:
    consumer = settings.consumer.model_copy(update={"entity_flush_seconds": seconds})
    return settings.model_copy(update={"consumer": consumer})


def test_batches_waiting_for_an_entity_flush_are_flushed_by_the_next_owner(
    pipeline: Settings, tmp_path: Path
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=12_000)
    applied: list[str] = []
    with (
        pytest.raises(SimulatedCrashError),
        consuming(_flush_every(pipeline, seconds=3_600)) as consumer,
    ):
        while len(applied) < 3:  # several batches, none flushed
            batch = consumer.poll_batch(2_000, 2.0)
            if batch is not None:
                applied.append(consumer.process(batch).batch_id)
        raise SimulatedCrashError("with batches waiting for their entity flush")
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        counted = db[TOTALS].find_one({"_id": TOTALS_ID}) or {}
        assert counted["events"] > 0  # counts: written with each batch
        assert db[USER_BUCKETS].count_documents({}) == 0  # entities: only in lost memory
        _, waiting = backlog(entity_progress(db, pipeline.kafka.topic, range(6)))
        assert sorted(waiting) == sorted(applied)  # listed in MongoDB, for the next owner

    summary = drain_until_caught_up(pipeline, max_batch_events=3_000)
    assert summary.replayed and summary.replayed[0].startswith(f"{pipeline.kafka.topic}/entities/")
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        assert_matches_truth(db, truth)
        assert all(
            not waiting
            for _, waiting in entity_progress(db, pipeline.kafka.topic, range(6)).values()
        )


def _consume_process(settings: Settings, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "pulse.cli.main", "consume", "--time-budget", "300"],
        cwd=REPO,
        env=subprocess_env(settings, PULSE_CONSUMER_MAX_BATCH_EVENTS="3000", **env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_sigkill_at_random_moments_then_restart_leaves_totals_exact(
    pipeline: Settings, tmp_path: Path
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=36_000)
    rng = random.Random(20261127)
    kills = 0
    with mongo_client(pipeline.mongo) as client:
        ledger = database(client, pipeline.mongo).ledger
        for _ in range(3):
            # Killed once it has begun a random number of batches: at any step of the next one.
            goal = ledger.count_documents({}) + rng.randint(1, 3)
            process = _consume_process(pipeline, PULSE_KAFKA_SESSION_TIMEOUT_MS="6000")
            wait_until(
                lambda: ledger.count_documents({}),
                timeout=120,
                what=f"the consumer began writing batches (goal {goal} ledger entries)",
                done=partial(operator.le, goal),  # goal <= begun
                every=rng.uniform(0.01, 0.3),
            )
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                kills += 1
            process.wait()
    assert kills == 3

    final = _consume_process(pipeline, PULSE_KAFKA_SESSION_TIMEOUT_MS="6000")
    output, _ = final.communicate(timeout=300)
    assert final.returncode == 0, output.decode()
    with mongo_client(pipeline.mongo) as client:
        assert_matches_truth(database(client, pipeline.mongo), truth)


def test_two_consumers_in_one_group_give_the_same_totals_as_one(
    pipeline: Settings, tmp_path: Path
) -> None:
    stop = threading.Event()
    members: list[AggregatingConsumer | None] = [None, None]

    def follow(index: int) -> DrainSummary:
        with consuming(pipeline) as member:
            members[index] = member
            return drain(
                member, member.process, time_budget=300, stop_when_caught_up=False, stop=stop
            )

    with ThreadPoolExecutor(max_workers=2) as pool:
        running = [pool.submit(follow, index) for index in range(2)]
        try:
            # Both members hold partitions before any event exists, so neither can drain it all.
            wait_until(
                lambda: [sorted(member.assigned) if member else [] for member in members],
                timeout=120,
                what="both members assigned, all 6 partitions between them",
                done=lambda seen: all(seen) and sorted(p for ps in seen for p in ps) == [*range(6)],
            )
            _, truth = produce(pipeline, tmp_path / "truth.json", events=30_000)
            with mongo_client(pipeline.mongo) as client:
                db = database(client, pipeline.mongo)
                wait_for_events(db, truth["events"], timeout=240)
        finally:
            stop.set()
        summaries = [future.result() for future in running]

    assert all(summary.batches > 0 for summary in summaries), summaries  # both took part
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        assert_matches_truth(db, truth)
        partitions_by_batch = [set(entry["partitions"]) for entry in db[LEDGER].find({})]
        assert len(set().union(*partitions_by_batch)) == 6


def test_a_member_handing_over_leaves_what_waits_to_its_successor_who_writes_it(
    pipeline: Settings, tmp_path: Path
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=24_000)
    # Entity flushes only when a drain ends: whatever was applied waits at every handover.
    limits = pipeline.consumer.model_copy(
        update={"entity_flush_seconds": 3_600, "entity_flush_events": 10_000_000}
    )
    holding = pipeline.model_copy(update={"consumer": limits})
    members: dict[str, AggregatingConsumer] = {}
    stops = {"first": threading.Event(), "second": threading.Event()}

    def follow(name: str, hand_over: bool) -> DrainSummary:
        with consuming(holding) as member:
            members[name] = member
            return drain(
                member,
                member.process,
                time_budget=300,
                stop_when_caught_up=False,
                stop=stops[name],
                hand_over=hand_over,
            )

    with (
        ThreadPoolExecutor(max_workers=2) as pool,
        mongo_client(pipeline.mongo) as client,
    ):
        db = database(client, pipeline.mongo)
        first = pool.submit(follow, "first", True)
        # The first member has applied every record, so batches wait for a flush on every
        # partition, whichever of them the group then moves (one batch may hold only some).
        wait_for_events(db, truth["events"], timeout=120)
        second = pool.submit(follow, "second", False)
        try:
            # The group gives the newcomer some partitions; what of them waited in the
            # first member's memory is re-read and written by the second, in the background.
            wait_until(
                lambda: (
                    [r.batch_id for r in members["second"].replays] if "second" in members else []
                ),
                timeout=120,
                what="the second member wrote a re-read entity flush",
            )
            stops["first"].set()  # leaves as a scheduled run does: handing over, not flushing
            handed = first.result()
            wait_until(
                lambda: sorted(members["second"].assigned),
                timeout=120,
                what="the second member holds every partition",
                done=lambda seen: seen == [*range(6)],
            )
            wait_for_events(db, truth["events"], timeout=240)
        finally:
            stops["first"].set()
            stops["second"].set()
        took_over = second.result()
        assert handed.entity_flushes == 0 and not handed.replayed  # nothing written at leaving
        assert took_over.replayed and all("/entities/" in r for r in took_over.replayed)
        assert_matches_truth(db, truth)
        assert all(
            not waiting
            for _, waiting in entity_progress(db, pipeline.kafka.topic, range(6)).values()
        )


def test_a_flush_has_begun_once_its_ledger_entry_is_written(
    pipeline: Settings, tmp_path: Path
) -> None:
    # What a member giving partitions up asks of a failed flush: write it again whole, or cut it.
    produce(pipeline, tmp_path / "truth.json", events=2_000)
    with consuming(pipeline) as consumer:
        drain(consumer, consumer.process, time_budget=120)
        (written, *_) = consumer.flushes
        writer = IsolatingFlushes(consumer.pipeline.writer)
        assert writer.begun(written.ranges)
        assert not writer.begun([OffsetRange(0, 10**9, 10**9 + 9)])
