"""The parameters of one generator run, declared once for the flow, `pulse generate` and
`pulse trigger generate` (pure).

Unset values (None) fall back to the PULSE_GENERATOR_* settings when the run is planned.
"""

from __future__ import annotations

from typing import Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pulse.config import GeneratorSettings
from pulse.generate.pacing import RatePlan
from pulse.generate.simulate import GeneratorConfig

_TOTALS = ("events", "bursts", "duration_seconds")
DEFAULT_BURSTS = 10
"""What a run sends when given no total (events, bursts or duration)."""
T = TypeVar("T")


class GeneratorParams(BaseModel):
    """What one generator run sends, and how fast; with no total, DEFAULT_BURSTS bursts."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    events: int | None = Field(None, ge=1, description="Total events to send.")
    bursts: int | None = Field(None, ge=1, description="Total bursts to send.")
    duration_seconds: float | None = Field(None, gt=0, description="Seconds to run.")
    batch_size: int | None = Field(None, ge=1, description="Events per burst.")
    interval_seconds: float | None = Field(None, ge=0, description="Seconds between bursts.")
    speed_multiplier: float | None = Field(
        None, gt=0, description="How much faster simulated time runs than wall time."
    )
    seed: int | None = Field(None, description="Seed for a reproducible run.")
    users: int | None = Field(None, ge=1, description="Distinct users.")
    items: int | None = Field(None, ge=1, description="Distinct items.")
    late_fraction: float = Field(0.0, ge=0, le=1, description="Share of late events.")
    malformed_fraction: float = Field(
        0.0, ge=0, le=1, description="Share of malformed records (dead-lettered)."
    )
    hot_item: str | None = Field(None, description="An item that now and then draws traffic.")
    hot_share: float = Field(0.0, ge=0, lt=1, description="Share of hot bursts going to it.")
    hot_every: int = Field(1, ge=1, description="Every how many bursts it is hot.")
    hot_cycle_minutes: int = Field(
        0, ge=0, le=1_440, description="Hot during one minute in every this many (0: per burst)."
    )
    active_share: float = Field(
        1.0, gt=0, le=1, description="Share of users active at a time (they take turns)."
    )
    visit_minutes: float = Field(10.0, gt=0, description="How long each user stays active.")
    topic: str | None = Field(None, description="Topic (default PULSE_KAFKA_TOPIC).")

    @model_validator(mode="after")
    def _one_total(self) -> Self:
        given = [name for name in _TOTALS if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give only one of events, bursts, duration_seconds (got {given})")
        return self

    @property
    def has_total(self) -> bool:
        return any(getattr(self, name) is not None for name in _TOTALS)

    def for_window(self, seconds: float) -> GeneratorParams:
        """The same run, sending for exactly `seconds` (a window of the schedule)."""
        return self.model_copy(update={"events": None, "bursts": None, "duration_seconds": seconds})

    def plan(self, defaults: GeneratorSettings) -> tuple[RatePlan, GeneratorConfig]:
        """Rate plan and what to simulate, unset values from the settings.

        Raises pydantic.ValidationError naming each bad value.
        """
        plan = RatePlan(
            batch_size=_or(self.batch_size, defaults.batch_size),
            interval_seconds=_or(self.interval_seconds, defaults.interval_seconds),
            speed_multiplier=_or(self.speed_multiplier, defaults.speed_multiplier),
            events=self.events,
            bursts=self.bursts if self.has_total else DEFAULT_BURSTS,
            duration_seconds=self.duration_seconds,
        )
        config = GeneratorConfig(
            users=_or(self.users, defaults.users),
            items=_or(self.items, defaults.items),
            interaction_types=defaults.interaction_types,
            late_fraction=self.late_fraction,
            malformed_fraction=self.malformed_fraction,
            hot_item=self.hot_item,
            hot_share=self.hot_share,
            hot_every=self.hot_every,
            hot_cycle_minutes=self.hot_cycle_minutes,
            active_share=self.active_share,
            visit_minutes=self.visit_minutes,
        )
        return plan, config

    def seed_or(self, defaults: GeneratorSettings) -> int | None:
        return defaults.seed if self.seed is None else self.seed


def _or(value: T | None, default: T) -> T:
    return default if value is None else value
