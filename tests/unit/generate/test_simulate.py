"""The generator: deterministic, follows the requested mix and skew, honours injected faults."""

from __future__ import annotations

from collections import Counter

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import ValidationError

from pulse.config import DEFAULT_INTERACTION_TYPES
from pulse.events import FIELDS
from pulse.generate.simulate import MALFORMED_KINDS, GeneratorConfig, InteractionGenerator
from pulse.ingest.batch import MicroBatch
from pulse.ingest.validate import ValidationRules, validate

START_MS = 1_795_737_600_000  # 2026-11-27T00:00:00Z


def _generator(seed: int = 7, **config: object) -> InteractionGenerator:
    return InteractionGenerator(GeneratorConfig(**config), seed=seed, run_id="run1")


def test_same_seed_same_events_and_payloads() -> None:
    first = _generator(seed=42, malformed_fraction=0.1).burst(0, 5_000, START_MS, 60_000)
    second = _generator(seed=42, malformed_fraction=0.1).burst(0, 5_000, START_MS, 60_000)
    assert_frame_equal(first.events, second.events)
    assert first.payloads == second.payloads
    assert first.keys == second.keys


def test_other_seed_other_events() -> None:
    first = _generator(seed=1).burst(0, 1_000, START_MS, 60_000)
    second = _generator(seed=2).burst(0, 1_000, START_MS, 60_000)
    assert first.events["user_id"].to_list() != second.events["user_id"].to_list()


def test_a_burst_is_reproducible_without_the_bursts_before_it() -> None:
    generator = _generator()
    generator.burst(0, 1_000, START_MS, 1_000)
    later = generator.burst(1_000, 1_000, START_MS + 1_000, 1_000)
    alone = _generator().burst(1_000, 1_000, START_MS + 1_000, 1_000)
    assert_frame_equal(later.events, alone.events)


def test_valid_payloads_decode_to_exactly_the_events() -> None:
    burst = _generator().burst(100, 2_000, START_MS, 10_000)
    decoded = pl.DataFrame([orjson.loads(payload) for payload in burst.payloads])
    assert tuple(decoded.columns) == FIELDS
    assert_frame_equal(decoded, burst.events)
    assert burst.keys == [user.encode() for user in burst.events["user_id"]]
    assert burst.events["event_id"].n_unique() == 2_000
    assert burst.events["event_id"][0] == "run1-100"


def test_timestamps_stay_in_the_burst_span_and_in_order() -> None:
    burst = _generator().burst(0, 10_000, START_MS, 5_000)
    stamps = burst.events["timestamp"]
    assert stamps.min() >= START_MS  # type: ignore[operator]
    assert stamps.max() < START_MS + 5_000  # type: ignore[operator]
    assert stamps.is_sorted()


def test_interaction_mix_is_followed() -> None:
    mix = {"view": 0.5, "click": 0.3, "add_to_cart": 0.15, "purchase": 0.05}
    burst = _generator(mix=mix).burst(0, 200_000, START_MS, 60_000)
    shares = burst.events["interaction_type"].value_counts(normalize=True)
    observed = dict(shares.iter_rows())
    for kind, weight in mix.items():
        assert observed[kind] == pytest.approx(weight, abs=0.005)


def test_user_and_item_popularity_follow_zipf() -> None:
    burst = _generator(users=1_000, items=1_000, user_skew=1.0, item_skew=0.0).burst(
        0, 300_000, START_MS, 60_000
    )
    users = Counter(burst.events["user_id"].to_list())
    # Zipf with exponent 1: rank 1 is twice as active as rank 2, ten times rank 10.
    assert users["u1"] / users["u2"] == pytest.approx(2.0, rel=0.06)
    assert users["u1"] / users["u10"] == pytest.approx(10.0, rel=0.12)
    items = Counter(burst.events["item_id"].to_list())
    # Exponent 0: uniform, every item near 300 events.
    assert len(items) == 1_000
    assert max(items.values()) < 1.3 * 300 and min(items.values()) > 0.7 * 300


def test_malformed_fraction_is_honoured_and_every_kind_is_really_broken() -> None:
    burst = _generator(malformed_fraction=0.05).burst(0, 20_000, START_MS, 60_000)
    assert burst.malformed == 1_000  # floor(0.05 * 20000 + u) for u in [0, 1)
    assert burst.events.height == 19_000
    valid_ids = set(burst.events["event_id"].to_list())
    broken = [payload for payload in burst.payloads if not _is_valid_event(payload, valid_ids)]
    assert len(broken) == 1_000
    kinds = Counter(_kind_of(payload) for payload in broken)
    assert set(kinds) == set(MALFORMED_KINDS)
    # and the consumer's validation rejects every one of them
    n = len(burst.payloads)
    records = MicroBatch.from_columns(
        "t", [0] * n, list(range(n)), [START_MS + 60_000] * n, [b"k"] * n, burst.payloads
    ).records
    verdict = validate(records, ValidationRules(interaction_types=DEFAULT_INTERACTION_TYPES))
    assert verdict.dead.height == 1_000 and verdict.events.height == 19_000


def _is_valid_event(payload: bytes, valid_ids: set[str]) -> bool:
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(event, dict) and event.get("event_id") in valid_ids


def _kind_of(payload: bytes) -> str:
    if payload == b"":
        return "empty"
    try:
        event = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return "not_json"
    if "item_id" not in event:
        return "missing_item_id"
    if event["interaction_type"] == "teleport":
        return "unknown_type"
    assert isinstance(event["timestamp"], str) and "T" in event["timestamp"]  # no offset
    return "timestamp_without_zone"


def test_late_fraction_is_honoured() -> None:
    burst = _generator(late_fraction=0.1, late_max_seconds=120).burst(0, 50_000, START_MS, 60_000)
    assert burst.late == pytest.approx(5_000, abs=4 * (50_000 * 0.1 * 0.9) ** 0.5)
    stamps = burst.events["timestamp"]
    assert stamps.min() >= START_MS - 120_000  # type: ignore[operator]
    assert not stamps.is_sorted()  # late events arrive out of order


def test_no_faults_unless_asked() -> None:
    burst = _generator().burst(0, 10_000, START_MS, 1_000)
    assert burst.malformed == 0 and burst.late == 0
    assert burst.events.height == len(burst.payloads) == 10_000


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"users": 0}, "users", "greater than or equal to 1"),
        ({"items": -3}, "items", "greater than or equal to 1"),
        ({"mix": {"view": 1, "teleport": 1}}, "", "unknown interaction type(s) ['teleport']"),
        ({"mix": {"view": 0.0}}, "", "not all zero"),
        ({"malformed_fraction": 1.5}, "malformed_fraction", "less than or equal to 1"),
        ({"user_skew": -1}, "user_skew", "greater than or equal to 0"),
    ],
)
def test_bad_parameters_are_refused_with_a_clear_message(
    config: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(ValidationError) as error:
        GeneratorConfig(**config)
    assert field in str(error.value)
    assert message in str(error.value)


def test_custom_interaction_types_are_drawn_uniformly_by_default() -> None:
    burst = _generator(interaction_types=("like", "share")).burst(0, 20_000, START_MS, 1_000)
    shares = dict(burst.events["interaction_type"].value_counts(normalize=True).iter_rows())
    assert set(shares) == {"like", "share"}
    assert shares["like"] == pytest.approx(0.5, abs=0.02)


def test_users_taking_turns_come_in_visits_and_stay_away_past_the_idle_time() -> None:
    gen = _generator(users=500, active_share=0.2, visit_minutes=10)
    minute = 60_000
    events = pl.concat(
        gen.burst(n * 2_000, 2_000, START_MS + n * minute, minute).events for n in range(120)
    )
    per_minute = events.group_by(pl.col("timestamp") // minute).agg(pl.col("user_id").n_unique())
    # A fifth active, and the window moves on by 10 users (100 per 10 minutes) in a minute.
    assert per_minute.select(pl.col("user_id").max()).item() <= 100 + 10
    visits = (
        events.sort("user_id", "timestamp")
        .with_columns(
            (pl.col("timestamp").diff().over("user_id").fill_null(0) > 30 * minute)
            .cum_sum()
            .over("user_id")
            .alias("visit")
        )
        .group_by("user_id", "visit")
        .agg((pl.col("timestamp").max() - pl.col("timestamp").min()).alias("length"))
    )
    # Each stays 10 minutes at most at a time, and comes back 40 minutes on.
    assert visits.select(pl.col("length").max()).item() <= 10 * minute
    assert visits.group_by("user_id").len().select(pl.col("len").max()).item() >= 2
