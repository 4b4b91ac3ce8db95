"""Seeded, vectorised generation of simulated user interactions (pure: no I/O, no clock).

Users and items are drawn with Zipf-like popularity (rank r has weight 1/r^skew), types from a
configurable mix. Each burst is reproducible on its own from (seed, first sequence number),
so any burst can be regenerated without replaying the ones before it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Self

import numpy as np
import numpy.typing as npt
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from pulse.config import DEFAULT_INTERACTION_TYPES
from pulse.events import ID_PATTERN, SCHEMA_VERSION, encode

DEFAULT_MIX = {"view": 0.70, "click": 0.20, "add_to_cart": 0.07, "purchase": 0.03}

# Malformed records the generator can inject, to exercise the consumer's dead-letter path.
# Kind -> what is wrong with it (see _malformed for how each is made from a valid payload).
MALFORMED_KINDS: dict[str, str] = {
    "not_json": "payload is not JSON",
    "missing_item_id": "item_id is missing",
    "unknown_type": "interaction_type is not a known type",
    "timestamp_without_zone": "timestamp is an ISO-8601 time with no UTC offset",
    "empty": "payload is empty",
}


def _malformed(kind: str, valid: str) -> str:
    """A broken variant of a valid payload."""
    if kind == "not_json":
        return valid[: len(valid) // 2]
    if kind == "missing_item_id":
        start = valid.index('"item_id":')
        end = valid.index(",", start) + 1
        return valid[:start] + valid[end:]
    if kind == "unknown_type":
        start = valid.index('"interaction_type":"') + len('"interaction_type":"')
        end = valid.index('"', start)
        return valid[:start] + "teleport" + valid[end:]
    if kind == "timestamp_without_zone":
        start = valid.index('"timestamp":') + len('"timestamp":')
        end = valid.index(",", start)
        moment = datetime.fromtimestamp(int(valid[start:end]) / 1000, tz=UTC)
        return f'{valid[:start]}"{moment:%Y-%m-%dT%H:%M:%S}"{valid[end:]}'
    return ""


class GeneratorConfig(BaseModel):
    """What to simulate. Invalid values are refused with the field named."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    users: int = Field(10_000, ge=1, le=100_000_000)
    items: int = Field(1_000, ge=1, le=100_000_000)
    interaction_types: tuple[str, ...] = DEFAULT_INTERACTION_TYPES
    mix: dict[str, float] | None = None
    """Relative weight per type; default: DEFAULT_MIX for the default types, else uniform."""
    user_skew: float = Field(0.8, ge=0, le=5)
    """Zipf exponent of user activity (0 = all users equally active)."""
    active_share: float = Field(1.0, gt=0, le=1)
    """Share of the users active at any moment. Below 1 they take turns: each user is active
    for `visit_minutes` of event time, then away for visit_minutes x (1 / share - 1), so
    users' sessions end and new ones start as they would on a real site."""
    visit_minutes: float = Field(10.0, gt=0)
    """With active_share below 1: how long each user stays among the active ones."""
    item_skew: float = Field(1.0, ge=0, le=5)
    """Zipf exponent of item popularity."""
    late_fraction: float = Field(0.0, ge=0, le=1)
    """Share of events whose timestamp lags behind their burst (late, out of order)."""
    late_max_seconds: float = Field(300.0, gt=0)
    """Largest lag of a late event, in simulated seconds."""
    malformed_fraction: float = Field(0.0, ge=0, le=1)
    """Share of records replaced by a malformed payload (never counted as events)."""
    hot_item: str | None = Field(None, pattern=ID_PATTERN)
    """An item that suddenly draws a share of the traffic (to exercise alerts)."""
    hot_share: float = Field(0.0, ge=0, lt=1)
    """Share of a hot burst's events that go to `hot_item`."""
    hot_every: int = Field(1, ge=1)
    """Every how many bursts the hot item is hot (1: always)."""
    hot_cycle_minutes: int = Field(0, ge=0, le=1_440)
    """If > 0, the hot item is hot during one event-time minute in every this many instead
    (whatever the bursts or runs): a steady stream then fires and resolves alerts."""

    def is_hot(self, index: int, start_ms: int) -> bool:
        """Whether burst `index`, starting at event time `start_ms`, is hot."""
        if self.hot_cycle_minutes:
            return start_ms // 60_000 % self.hot_cycle_minutes == 0
        return index % self.hot_every == 0

    @model_validator(mode="after")
    def _mix_matches_types(self) -> Self:
        unknown = set(self.mix or {}) - set(self.interaction_types)
        if unknown:
            raise ValueError(
                f"mix names unknown interaction type(s) {sorted(unknown)}; "
                f"known: {list(self.interaction_types)}"
            )
        if self.mix is not None and (
            any(weight < 0 or not math.isfinite(weight) for weight in self.mix.values())
            or sum(self.mix.values()) <= 0
        ):
            raise ValueError("mix weights must be finite, >= 0, and not all zero")
        return self

    def type_weights(self) -> npt.NDArray[np.float64]:
        """Probability of each interaction type, in `interaction_types` order."""
        if self.mix is not None:
            weights = [self.mix.get(name, 0.0) for name in self.interaction_types]
        elif set(self.interaction_types) == set(DEFAULT_MIX):
            weights = [DEFAULT_MIX[name] for name in self.interaction_types]
        else:
            weights = [1.0] * len(self.interaction_types)
        array = np.asarray(weights, dtype=np.float64)
        normalised: npt.NDArray[np.float64] = array / array.sum()
        return normalised


def zipf_cdf(count: int, skew: float) -> npt.NDArray[np.float64]:
    """Cumulative probabilities of ranks 1..count with weight 1/rank^skew."""
    weights = np.arange(1, count + 1, dtype=np.float64) ** -skew
    cdf: npt.NDArray[np.float64] = np.cumsum(weights)
    cdf /= cdf[-1]
    return cdf


@dataclass(frozen=True)
class Burst:
    """One burst: the valid events, and the wire records (some possibly malformed)."""

    events: pl.DataFrame
    """The valid events sent, in the event schema: the ground truth of this burst."""
    keys: list[bytes]
    """Message key (user_id) of each record."""
    payloads: list[bytes]
    """Wire value of each record, aligned with `keys`."""
    malformed: int
    late: int
    by_type: dict[str, int]
    """Valid events per interaction type."""


class InteractionGenerator:
    """Generates bursts of events; deterministic for a given seed and run id."""

    def __init__(self, config: GeneratorConfig, seed: int, run_id: str) -> None:
        self.config = config
        self.seed = seed
        self.run_id = run_id
        self._active_users = max(1, round(config.users * config.active_share))
        self._user_cdf = zipf_cdf(self._active_users, config.user_skew)
        self._item_cdf = zipf_cdf(config.items, config.item_skew)
        self._type_cdf = np.cumsum(config.type_weights())
        self._types = pl.Series("interaction_type", config.interaction_types, pl.String)
        self._user_ids = _id_pool("u", config.users)
        self._item_ids = _id_pool("i", config.items)

    def _items(
        self, rng: np.random.Generator, ranks: npt.NDArray[np.int64], count: int, hot: bool
    ) -> pl.Series:
        ids = _ids(self._item_ids, "i", ranks)
        if not (hot and self.config.hot_item and self.config.hot_share):
            return ids
        chosen = pl.Series(rng.random(count) < self.config.hot_share)
        return pl.select(
            pl.when(chosen).then(pl.lit(self.config.hot_item)).otherwise(ids)
        ).to_series()

    def _taking_turns(
        self, ranks: npt.NDArray[np.int64], timestamps: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.int64]:
        """Users by their rank among the active ones at each event's time: the active ones
        are a window over all users that moves on by one user every visit / active users."""
        total = self.config.users
        if self._active_users >= total:
            return ranks
        visit_ms = int(self.config.visit_minutes * 60_000)
        offset = timestamps * self._active_users // visit_ms % total
        moved: npt.NDArray[np.int64] = (ranks + offset) % total
        return moved

    def burst(
        self, first_seq: int, count: int, start_ms: int, span_ms: int, hot: bool = False
    ) -> Burst:
        """`count` events with sequence numbers from `first_seq`, timed in [start, start+span).

        In a `hot` burst a `hot_share` of the events go to the configured hot item.
        """
        rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(first_seq,)))
        users = np.searchsorted(self._user_cdf, rng.random(count), side="right")
        items = np.searchsorted(self._item_cdf, rng.random(count), side="right")
        types = np.searchsorted(self._type_cdf, rng.random(count), side="right")
        types = np.minimum(types, len(self._types) - 1)  # guards the cdf's last float rounding
        timestamps = start_ms + np.sort(np.floor(rng.random(count) * max(span_ms, 0)))
        late = rng.random(count) < self.config.late_fraction
        late_max_ms = int(self.config.late_max_seconds * 1000)
        timestamps = timestamps.astype(np.int64) - late * rng.integers(1, late_max_ms + 1, count)

        users = self._taking_turns(users, timestamps)
        events = pl.DataFrame(
            {
                "event_id": _event_ids(self.run_id, first_seq, count),
                "user_id": _ids(self._user_ids, "u", users),
                "item_id": self._items(rng, items, count, hot),
                "interaction_type": self._types.gather(types),
                "timestamp": timestamps,
                "schema_version": pl.repeat(SCHEMA_VERSION, count, dtype=pl.Int64, eager=True),
            }
        )
        payloads = encode(events).to_list()
        keys = events.get_column("user_id").cast(pl.Binary).to_list()

        malformed = _pick(rng, count, self.config.malformed_fraction)
        kinds = list(MALFORMED_KINDS)
        for index, kind in zip(malformed, rng.integers(0, len(kinds), len(malformed)), strict=True):
            payloads[index] = _malformed(kinds[kind], payloads[index].decode()).encode()
        valid = np.ones(count, dtype=bool)
        valid[malformed] = False
        return Burst(
            events=events.filter(pl.Series(valid)),
            keys=keys,
            payloads=payloads,
            malformed=len(malformed),
            late=int(np.count_nonzero(late & valid)),
            by_type=dict(
                zip(
                    self.config.interaction_types,
                    np.bincount(types[valid], minlength=len(self._types)).tolist(),
                    strict=True,
                )
            ),
        )


def _event_ids(run_id: str, first_seq: int, count: int) -> pl.Series:
    """Unique ids "<run id>-<sequence number>"."""
    seq = pl.int_range(first_seq, first_seq + count, eager=True).cast(pl.String)
    return (run_id + "-") + seq


_POOL_LIMIT = 5_000_000  # above this many ids, format them per burst instead of keeping them


def _id_pool(prefix: str, count: int) -> pl.Series | None:
    """Ids of ranks 1..count, precomputed: gathering is twice as fast as formatting."""
    if count > _POOL_LIMIT:
        return None
    ids = pl.select(pl.format(f"{prefix}{{}}", pl.int_range(1, count + 1))).to_series()
    return ids.rechunk()  # compacts the string buffers: gathers get 10x faster


def _ids(pool: pl.Series | None, prefix: str, ranks: npt.NDArray[np.int64]) -> pl.Series:
    """Ids ("u17") of zero-based popularity ranks."""
    if pool is not None:
        return pool.gather(ranks)
    return pl.select(pl.format(f"{prefix}{{}}", pl.Series(ranks) + 1)).to_series()


def _pick(rng: np.random.Generator, count: int, fraction: float) -> npt.NDArray[np.int64]:
    """Indices of round(fraction*count) records, rounded at random so the mean is exact."""
    wanted = math.floor(fraction * count + rng.random())
    return np.sort(rng.choice(count, size=min(wanted, count), replace=False))
