"""The one typed settings object. Nothing else in Pulse reads environment variables.

Every field maps to an environment variable ``PULSE_<SECTION>_<FIELD>`` (for example
``PULSE_KAFKA_BOOTSTRAP_SERVERS``), also read from a ``.env`` file. Explicit arguments beat
the environment, which beats the defaults. Invalid values fail at startup with a message
that names the variable (see :func:`load_settings`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self, cast

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from pulse.access import allowlist_entry
from pulse.events import ID_PATTERN

ENV_PREFIX = "PULSE_"
# Interaction type names: safe as MongoDB keys and in JSON without escaping. The event schema
# (pulse/events.py) re-exports this rule; it lives here so settings load without Polars.
TYPE_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
DEFAULT_INTERACTION_TYPES = ("view", "click", "add_to_cart", "purchase")
KAFKA_SECRET_WORDS = ("password", "secret", "token", "jaas", "key.pem", "oauthbearer.config")
"""A librdkafka property whose name holds one of these carries a credential."""
KAFKA_PROPERTIES_OWNED = {
    "bootstrap.servers": "PULSE_KAFKA_BOOTSTRAP_SERVERS",
    "security.protocol": "PULSE_KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "PULSE_KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "PULSE_KAFKA_SASL_MECHANISM",
    "sasl.username": "PULSE_KAFKA_SASL_USERNAME",
    "sasl.password": "PULSE_KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "PULSE_KAFKA_SSL_CA_LOCATION",
    "group.id": "PULSE_KAFKA_CONSUMER_GROUP",
    "session.timeout.ms": "PULSE_KAFKA_SESSION_TIMEOUT_MS",
    "enable.auto.commit": "exactly-once: offsets are stored with the figures",
    "enable.auto.offset.store": "exactly-once: offsets are stored with the figures",
    "enable.idempotence": "exactly-once: no duplicates on retries",
    "acks": "exactly-once: no duplicates on retries",
    "isolation.level": "exactly-once: what a replay reads must be what was counted",
    "auto.offset.reset": "exactly-once: a new group starts at the oldest record",
    "partition.assignment.strategy": "handovers: the consumer is cooperative",
}
"""librdkafka properties PULSE_KAFKA_EXTRA_CONFIG may not set, and what sets them instead."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


def _kafka_value(key: str, value: object) -> str | SecretStr:
    """A PULSE_KAFKA_EXTRA_CONFIG value as librdkafka takes it, a string (JSON's true and 5
    become "true" and "5"), kept secret when its property is named like a credential."""
    if isinstance(value, SecretStr):
        return value
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return SecretStr(text) if any(word in key for word in KAFKA_SECRET_WORDS) else text


class KafkaSettings(_Section):
    """Where the interaction events travel."""

    bootstrap_servers: str = "127.0.0.1:9092"
    """Comma-separated host:port list of Kafka brokers."""
    topic: str = Field("interactions", min_length=1, max_length=249, pattern=r"^[A-Za-z0-9._-]+$")
    """Topic the generator produces to and the consumer reads."""
    partitions: int = Field(6, ge=1, le=10_000)
    """Partitions when Pulse creates the topic; the unit of consumer scale-out."""
    replication_factor: int = Field(1, ge=1, le=32)
    """Replication factor when Pulse creates the topic (1 for the local single broker)."""
    consumer_group: str = Field("pulse-aggregator", min_length=1)
    """Consumer group id; keep it stable so committed offsets survive restarts."""
    session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    """How soon the group gives a crashed consumer's partitions to the others."""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    """librdkafka security.protocol."""
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"] | None = None
    """SASL mechanism, required with the SASL_* protocols. OAUTHBEARER takes its settings
    (e.g. sasl.oauthbearer.method=oidc, client id and secret, token endpoint) from
    PULSE_KAFKA_EXTRA_CONFIG."""
    sasl_username: str | None = None
    """SASL user name."""
    sasl_password: SecretStr | None = None
    """SASL password (secret: never logged)."""
    ssl_ca_location: Path | None = None
    """CA bundle to verify the brokers' certificates (SSL and SASL_SSL)."""
    dlq_topic: str | None = Field(None, pattern=r"^[A-Za-z0-9._-]+$")
    """Optional topic that also receives every dead-lettered record (raw bytes, reason header)."""
    extra_config: dict[str, Annotated[str | SecretStr, Field(union_mode="left_to_right")]] = Field(
        default_factory=dict
    )
    """More librdkafka properties for every producer, consumer and admin client (JSON object),
    e.g. {"client.id": "pulse", "ssl.certificate.location": "/etc/pulse/client.pem",
    "sasl.oauthbearer.method": "oidc"}. Values of properties named like a password, secret,
    token or key are secrets: never logged. Properties Pulse sets itself are refused."""

    @field_validator("extra_config", mode="before")
    @classmethod
    def _extra_as_strings(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value  # pydantic names the wrong type
        return {str(key): _kafka_value(str(key), item) for key, item in value.items()}

    @field_validator("extra_config")
    @classmethod
    def _extra_not_owned(cls, value: dict[str, str | SecretStr]) -> dict[str, str | SecretStr]:
        owned = [
            f"{key} (set by {KAFKA_PROPERTIES_OWNED[key]})"
            for key in value
            if key in KAFKA_PROPERTIES_OWNED
        ]
        if owned:
            raise ValueError(f"Pulse sets these itself: {', '.join(owned)}")
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> Self:
        if not self.security_protocol.startswith("SASL_"):
            return self
        if self.sasl_mechanism is None:
            raise ValueError(
                f"security_protocol={self.security_protocol} needs "
                f"{ENV_PREFIX}KAFKA_SASL_MECHANISM, and with PLAIN or SCRAM "
                f"{ENV_PREFIX}KAFKA_SASL_USERNAME and {ENV_PREFIX}KAFKA_SASL_PASSWORD"
            )
        if self.sasl_mechanism != "OAUTHBEARER" and not (self.sasl_username and self.sasl_password):
            raise ValueError(
                f"sasl_mechanism={self.sasl_mechanism} needs {ENV_PREFIX}KAFKA_SASL_USERNAME "
                f"and {ENV_PREFIX}KAFKA_SASL_PASSWORD"
            )
        return self

    def client_config(self) -> dict[str, str]:
        """librdkafka properties shared by producer, consumer and admin clients."""
        config = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.sasl_mechanism and self.security_protocol.startswith("SASL_"):
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_mechanism and self.sasl_username and self.sasl_password:
            config["sasl.mechanism"] = self.sasl_mechanism  # as before: PLAINTEXT ignores it
            config["sasl.username"] = self.sasl_username
            config["sasl.password"] = self.sasl_password.get_secret_value()
        if self.ssl_ca_location:
            config["ssl.ca.location"] = str(self.ssl_ca_location)
        return config | self.extra_client_config()

    def extra_client_config(self) -> dict[str, str]:
        """PULSE_KAFKA_EXTRA_CONFIG as librdkafka takes it (secrets revealed: for clients only)."""
        return {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value
            for key, value in self.extra_config.items()
        }


class MongoSettings(_Section):
    """Where the aggregates, ledger and dead letters live."""

    uri: SecretStr = SecretStr("mongodb://127.0.0.1:27017")
    """MongoDB connection string; may carry credentials and TLS options (secret: never logged)."""
    database: str = Field("pulse", min_length=1, max_length=63, pattern=r"^[^/\\. \"$]+$")
    """Database holding all of Pulse's collections."""
    timeout_ms: int = Field(5_000, ge=100)
    """Server selection and connect timeout, so an outage fails fast and visibly."""
    user_buckets: int = Field(1_024, ge=1, le=1_000_000)
    """Per-user figures live in this many bucket documents (MongoDB's bucket pattern), so an
    entity flush writes one document per bucket, not per user. Fixed when a database is first
    written; about users / 400 suits best (docs/consumer.md)."""
    item_buckets: int = Field(256, ge=1, le=65_536)
    """Each minute's per-item figures live in this many bucket documents, so an entity flush
    writes at most this many a minute, not one per item. Fixed when a database is first
    written; the item chart reads one a minute, so about the items active in a minute / 25
    keeps it within the page budget (docs/consumer.md)."""

    @field_validator("uri")
    @classmethod
    def _uri_scheme(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith(("mongodb://", "mongodb+srv://")):
            raise ValueError("must start with mongodb:// or mongodb+srv://")
        return value


class PrefectSettings(_Section):
    """The Prefect API the flows and deployments talk to."""

    api_url: str = Field("http://127.0.0.1:4200/api", pattern=r"^https?://")
    """Prefect API URL (the UI is the same address without /api)."""
    api_auth_string: SecretStr | None = None
    """Basic-auth string 'user:password' for a Prefect server started with auth (secret)."""


class GeneratorSettings(_Section):
    """Defaults of the interaction generator (flow parameters override them)."""

    users: int = Field(5_000, ge=1)
    """Distinct simulated users."""
    items: int = Field(500, ge=1)
    """Distinct simulated items."""
    interaction_types: tuple[str, ...] = DEFAULT_INTERACTION_TYPES
    """Interaction types the generator draws from and the consumer accepts (JSON list)."""
    batch_size: int = Field(500, ge=1)
    """Events per burst (the default 500 per second suits the local FerretDB; see
    docs/performance.md for what MongoDB takes)."""
    interval_seconds: float = Field(1.0, ge=0)
    """Seconds between bursts."""
    speed_multiplier: float = Field(1.0, gt=0)
    """How much faster simulated event time runs than wall time."""
    seed: int | None = None
    """Seed for reproducible runs; empty means a fresh random seed per run."""
    malformed_fraction: float = Field(0.002, ge=0, le=1)
    """Share of malformed records the scheduled stream sends (0.2%: the dead-letter view and
    replay have something to show); 0 turns them off."""
    hot_item: str = Field("i42", pattern=ID_PATTERN)
    """An item the scheduled stream makes hot now and then, so alerts fire and resolve."""
    hot_share: float = Field(0.3, ge=0, lt=1)
    """Share of the events that go to the hot item while it is hot; 0 turns it off."""
    hot_cycle_minutes: int = Field(5, ge=1, le=1_440)
    """The hot item is hot during one minute in every this many."""
    active_share: float = Field(0.2, gt=0, le=1)
    """Share of the users the scheduled stream has active at a time: they take turns, each
    active for PULSE_GENERATOR_VISIT_MINUTES, then away four times as long (at 0.2), so
    sessions end and start in the default run; 1 keeps every user active."""
    visit_minutes: float = Field(10.0, gt=0)
    """How long each user of the scheduled stream stays active before others take over."""

    @field_validator("interaction_types")
    @classmethod
    def _types_valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one interaction type")
        if len(set(value)) != len(value):
            raise ValueError("interaction types must be unique")
        for name in value:
            if not re.fullmatch(TYPE_PATTERN, name):
                raise ValueError(
                    f"invalid interaction type {name!r}: use lower-case letters, digits and _, "
                    "starting with a letter, at most 32 characters"
                )
        return value


class ConsumerSettings(_Section):
    """Micro-batch sizing and validation rules of the aggregating consumer."""

    max_batch_events: int = Field(50_000, ge=1)
    """Upper bound of events in one micro-batch."""
    max_batch_wait_seconds: float = Field(2.0, gt=0)
    """Longest wait for the first record of a micro-batch (and for the batch as a whole)."""
    batch_linger_seconds: float = Field(0.2, gt=0)
    """A micro-batch closes once no more records arrive for this long: a caught-up consumer
    writes what is there at once (low lag), a backlog fills batches to the maximum."""
    max_batch_age_seconds: float = Field(0.5, gt=0)
    """A micro-batch closes at the latest this long after its first record arrived: what
    bounds freshness under a steady stream, which never pauses long enough to linger out."""
    time_budget_seconds: float = Field(50.0, gt=0)
    """How long one consumer flow run drains before it ends."""
    entity_flush_seconds: float = Field(5.0, ge=0)
    """Per-user, per-item and item x minute documents, leader boards and alert checks are
    written at most this often (0: with every micro-batch). Totals and per-minute counts are
    written with every micro-batch; docs/consumer.md explains the two tiers."""
    entity_flush_events: int = Field(500_000, ge=1)
    """An entity flush also happens once this many events wait for it. A consumer holds at
    most twice this many: past that it waits for the flush being written before reading on,
    so its memory does not grow with the database's slowness."""
    max_record_bytes: int = Field(65_536, ge=64, le=8_388_608)
    """Records larger than this are dead-lettered unread. At most 8 MiB: a record rejected for
    a field is kept whole in its dead letter, which must fit in one MongoDB document."""
    dead_letter_keep_bytes: int = Field(1_024, ge=0, le=65_536)
    """How much of a record rejected as a whole (too big, not UTF-8, not JSON) its dead letter
    keeps, with the whole record's size and SHA-256. Records rejected for a field are kept
    whole."""
    max_event_age_seconds: int = Field(7 * 24 * 3600, ge=1)
    """An event older than this before its Kafka timestamp is absurd and dead-lettered."""
    max_event_lead_seconds: int = Field(3600, ge=0)
    """An event newer than this after its Kafka timestamp is absurd and dead-lettered."""


FOR_GOOD = timedelta(days=100 * 365)
"""A retention that keeps everything (the unit tests' databases, whose events are of fixed
past times)."""


class RetentionSettings(_Section):
    """How long `pulse maintain` keeps what grows with time (docs/operations.md)."""

    ledger_hours: float = Field(48.0, gt=0)
    """Finished ledger entries are removed this long after they started. Unfinished ones
    (they can still be replayed) and those an entity flush still needs stay."""
    dead_letter_days: float = Field(7.0, gt=0)
    """Dead letters are removed this long after they were received; their counts by field
    stay in the global document for good."""
    alert_days: float = Field(30.0, gt=0)
    """Alerts are removed this long after they fired."""
    minute_days: float = Field(2.0, gt=0)
    """Per-minute documents (the global minutes, item x minute, user x minute, minute
    sketches) are removed this long after their minute, and none are written for older
    minutes. Below a day, charts of the last day and item trends show only what is kept;
    an alert rule whose window needs older minutes is skipped (pulse/alerts/rules.py)."""
    hour_days: float = Field(90.0, ge=8)
    """Hourly sums are removed this long after their hour (days are kept for good). At least
    8 days: late events (PULSE_CONSUMER_MAX_EVENT_AGE_SECONDS, a week) still add to them."""
    pass_minutes: int = Field(10, ge=1)
    """How often the maintain-store deployment runs a pass."""

    @property
    def minutes_kept(self) -> timedelta:
        return timedelta(days=self.minute_days)


class AlertSettings(_Section):
    """Where alerts and pipeline failures are sent."""

    channels: dict[str, SecretStr] = Field(default_factory=dict)
    """Named Apprise URLs (JSON object), e.g. {"ops": "slack://T/B/C", "hook":
    "json://hooks.example/pulse"}; rules pick them by name. Empty: alerts are only stored and
    logged. URLs carry credentials: never logged."""
    rules_file: Path = Path("alerts.yaml")
    """YAML file of alert rules, loaded at start."""
    channel_timeout_seconds: float = Field(5.0, gt=0)
    """Longest wait for one channel; a slow or failing channel never blocks the pipeline."""
    route: Literal["pulse", "prefect"] = "pulse"
    """Who sends alerts to their channels. pulse: the consumer, through Apprise (every kind of
    channel; each delivery stored on the alert). prefect: Prefect's server, by one automation
    per channel on the alert's `pulse.alert.firing` event (JSON webhooks and Slack only).
    Never both, so no alert is sent twice."""


class DashboardSettings(_Section):
    """The Streamlit dashboard."""

    require_login: bool = False
    """Ask visitors to log in with OpenID Connect (st.login) first; configure the provider in
    .streamlit/secrets.toml as docs/security.md shows."""
    allowed_users: tuple[str, ...] = ()
    """Who may open the dashboard with require_login on (JSON list): e-mail addresses
    ("alice@example.com"), whole domains ("@example.com"), or "*" for every account of the
    identity provider."""
    refresh_seconds: int = Field(2, ge=1, le=300)
    """Default auto-refresh interval of the pages."""

    @field_validator("allowed_users")
    @classmethod
    def _entries_valid(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(allowlist_entry(entry) for entry in value)

    @model_validator(mode="after")
    def _someone_admitted(self) -> Self:
        if self.require_login and not self.allowed_users:
            raise ValueError(
                f"{ENV_PREFIX}DASHBOARD_REQUIRE_LOGIN=true admits nobody until "
                f"{ENV_PREFIX}DASHBOARD_ALLOWED_USERS lists "
                'e-mail addresses, @domains, or "*" for every account of the identity provider'
            )
        return self


class FunnelSettings(_Section):
    """The funnel: interaction types as ordered steps (the dashboard's Funnel page)."""

    steps: tuple[str, ...] | None = None
    """The steps in order (JSON list), each an interaction type, e.g. ["view", "purchase"];
    conversion is each step's events over the step before's. Unset: every interaction type,
    in the order PULSE_GENERATOR_INTERACTION_TYPES gives them."""
    min_events: int = Field(20, ge=1)
    """Events of the first step an item needs before it is ranked by conversion (fewer make
    a ratio noise)."""

    @field_validator("steps")
    @classmethod
    def _steps_valid(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is None:
            return value
        if len(value) < 2:
            raise ValueError("a funnel needs at least two steps")
        if len(set(value)) != len(value):
            raise ValueError("funnel steps must be unique")
        return value


SESSION_IDLE = timedelta(minutes=30)
"""The idle time that ends a session unless PULSE_SESSIONS_IDLE_MINUTES says otherwise."""


class SessionsSettings(_Section):
    """Users' sessions (the dashboard's Sessions page; pulse/ingest/sessions.py)."""

    idle_minutes: int = Field(SESSION_IDLE // timedelta(minutes=1), ge=1, le=24 * 60)
    """A user's session ends when this many minutes pass with no event of the user; the
    next event starts a new session. Changing it changes how sessions are counted from the
    next entity flush on, not those already counted."""

    @property
    def idle(self) -> timedelta:
        return timedelta(minutes=self.idle_minutes)


class MetricsSettings(_Section):
    """The Prometheus endpoint the pipeline serves (docs/operations.md)."""

    port: int = Field(9464, ge=0, le=65_535)
    """Port of /metrics, served by the deployment runner (`make run`, compose's pipeline); 0
    turns it off."""
    host: str = "127.0.0.1"
    """Address /metrics listens on (0.0.0.0 to let a Prometheus on another host scrape it)."""


class StackSettings(_Section):
    """The local services `make up` starts without Docker."""

    state_dir: Path = Path(".state")
    """All runtime state (data, logs, pid files); git-ignored."""
    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "pulse")
    """Downloads and builds kept across runs (Kafka jars, FerretDB binary)."""
    kafka_controller_port: int = Field(9093, ge=1, le=65_535)
    """KRaft controller listener of the local broker."""
    kafka_heap: str = Field("768m", pattern=r"^\d+[mMgG]$")
    """JVM heap of the local broker."""
    dashboard_port: int = Field(8501, ge=1, le=65_535)
    """Port of the Streamlit dashboard."""
    prefect_retention_days: float = Field(2.0, gt=1 / 24)
    """The local Prefect server deletes flow runs (with their task runs, logs and artifacts)
    and events older than this: the default schedules make about 2,000 flow runs a day. Over
    an hour (Prefect's own lower bound)."""
    start_timeout_seconds: float = Field(120.0, gt=0)
    """How long `up` waits for each service to answer."""

    @field_validator("state_dir", "cache_dir")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()


class Settings(BaseSettings):
    """All of Pulse's configuration."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,  # `PULSE_X=` in .env means "use the default"
        extra="ignore",
        frozen=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    mongo: MongoSettings = MongoSettings()
    prefect: PrefectSettings = PrefectSettings()
    generator: GeneratorSettings = GeneratorSettings()
    consumer: ConsumerSettings = ConsumerSettings()
    retention: RetentionSettings = RetentionSettings()
    alerts: AlertSettings = AlertSettings()
    dashboard: DashboardSettings = DashboardSettings()
    funnel: FunnelSettings = FunnelSettings()
    sessions: SessionsSettings = SessionsSettings()
    metrics: MetricsSettings = MetricsSettings()
    stack: StackSettings = StackSettings()

    @property
    def funnel_steps(self) -> tuple[str, ...]:
        """The funnel's steps: PULSE_FUNNEL_STEPS, else every interaction type in order."""
        return self.funnel.steps or self.generator.interaction_types

    @model_validator(mode="after")
    def _funnel_of_known_types(self) -> Self:
        known = self.generator.interaction_types
        unknown = [step for step in self.funnel_steps if step not in known]
        if unknown:
            raise ValueError(
                f"{ENV_PREFIX}FUNNEL_STEPS: {', '.join(map(repr, unknown))} not among "
                f"{ENV_PREFIX}GENERATOR_INTERACTION_TYPES ({', '.join(known)})"
            )
        return self


class SettingsError(ValueError):
    """Configuration that cannot work; the message names each offending variable."""


def env_name(location: tuple[int | str, ...]) -> str:
    """The environment variable behind a settings field location, e.g. PULSE_KAFKA_TOPIC."""
    name = ENV_PREFIX + "_".join(str(part) for part in location[:2]).upper()
    return name if len(location) > 1 else name + "_*"


def load_settings(**overrides: object) -> Settings:
    """Build the settings, turning validation errors into one line per bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            location = error["loc"]
            if location:
                lines.append(f"{env_name(location)}: {error['msg']}")
            else:  # a rule across sections: its message names the variables
                lines.append(error["msg"].removeprefix("Value error, "))
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None


def sections() -> list[tuple[str, type[BaseModel]]]:
    """The settings sections in order: (name, model class)."""
    fields = Settings.model_fields.items()
    return [(name, cast(type[BaseModel], info.annotation)) for name, info in fields]


def all_env_names() -> set[str]:
    """Every environment variable the settings model reads."""
    return {
        env_name((section, field)) for section, model in sections() for field in model.model_fields
    }


def env_example() -> str:
    """The text of `.env.example`: every variable with its description and default."""
    out = [
        "# Pulse settings. Copy to .env and edit; real environment variables win over this file.",
        "# Regenerate with `pulse config example > .env.example` after changing pulse/config.py.",
    ]
    for section, model in sections():
        out += ["", f"# --- {section}: {model.__doc__} ---"]
        defaults = model()
        for field, field_info in model.model_fields.items():
            value = getattr(defaults, field)
            description = " ".join((field_info.description or "").split())
            out.append(f"# {description}")
            out.append(f"# {env_name((section, field))}={_env_value(value)}")
    return "\n".join(out) + "\n"


def _env_value(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, tuple):
        return "[" + ",".join(f'"{_env_value(item)}"' for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f'"{k}":"{_env_value(v)}"' for k, v in value.items()) + "}"
    if isinstance(value, Path) and value.is_relative_to(Path.home()):
        return "~/" + str(value.relative_to(Path.home()))
    return str(value)
