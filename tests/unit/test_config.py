"""The settings object: environment mapping, precedence, validation messages, secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from pulse.cli.config import shown
from pulse.config import (
    SettingsError,
    all_env_names,
    env_example,
    load_settings,
    sections,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer .env or PULSE_* variable leaks into these tests."""
    monkeypatch.chdir(tmp_path)
    for name in all_env_names():
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_local_stack() -> None:
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert settings.mongo.uri.get_secret_value() == "mongodb://127.0.0.1:27017"
    assert settings.prefect.api_url == "http://127.0.0.1:4200/api"
    assert settings.kafka.partitions == 6


def test_environment_variables_map_to_nested_fields(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PULSE_KAFKA_BOOTSTRAP_SERVERS", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("PULSE_CONSUMER_MAX_BATCH_EVENTS", "1234")
    monkeypatch.setenv("PULSE_GENERATOR_INTERACTION_TYPES", '["view","like"]')
    monkeypatch.setenv("PULSE_STACK_STATE_DIR", str(tmp_path / "state"))
    settings = load_settings()
    assert settings.kafka.bootstrap_servers == "broker-1:9092,broker-2:9092"
    assert settings.consumer.max_batch_events == 1234
    assert settings.generator.interaction_types == ("view", "like")
    assert settings.stack.state_dir == tmp_path / "state"


def test_env_file_is_read_and_real_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("PULSE_KAFKA_TOPIC=from-file\nPULSE_MONGO_DATABASE=filedb\n")
    monkeypatch.setenv("PULSE_KAFKA_TOPIC", "from-env")
    settings = load_settings()
    assert settings.kafka.topic == "from-env"
    assert settings.mongo.database == "filedb"


def test_explicit_arguments_beat_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_KAFKA_TOPIC", "from-env")
    monkeypatch.setenv("PULSE_KAFKA_PARTITIONS", "3")
    settings = load_settings(kafka={"topic": "explicit"})
    assert settings.kafka.topic == "explicit"
    assert settings.kafka.partitions == 3


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("PULSE_KAFKA_PARTITIONS", "0", "greater than or equal to 1"),
        ("PULSE_KAFKA_TOPIC", "bad topic!", "should match pattern"),
        ("PULSE_MONGO_URI", "http://example", "mongodb://"),
        ("PULSE_GENERATOR_SPEED_MULTIPLIER", "-2", "greater than 0"),
        ("PULSE_GENERATOR_INTERACTION_TYPES", '["view","view"]', "unique"),
        ("PULSE_CONSUMER_MAX_BATCH_EVENTS", "many", "valid integer"),
        ("PULSE_KAFKA_SECURITY_PROTOCOL", "TLS", "PLAINTEXT"),
        ("PULSE_KAFKA_TOPICS", "typo", "Extra inputs"),
        ("PULSE_FUNNEL_STEPS", '["view"]', "at least two steps"),
        ("PULSE_FUNNEL_STEPS", '["view", "buy"]', "'buy' not among"),
    ],
)
def test_invalid_values_fail_with_the_variable_named(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert f"{variable}: " in str(error.value)
    assert message in str(error.value)


def test_sasl_protocol_requires_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="PULSE_KAFKA_SASL_PASSWORD"):
        load_settings()
    monkeypatch.setenv("PULSE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("PULSE_KAFKA_SASL_USERNAME", "pulse")
    monkeypatch.setenv("PULSE_KAFKA_SASL_PASSWORD", "hunter2-canary")
    config = load_settings().kafka.client_config()
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.password"] == "hunter2-canary"


def test_oauthbearer_needs_no_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("PULSE_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    with pytest.raises(SettingsError, match="PULSE_KAFKA_SASL_USERNAME"):
        load_settings()
    monkeypatch.setenv("PULSE_KAFKA_SASL_MECHANISM", "OAUTHBEARER")
    monkeypatch.setenv(
        "PULSE_KAFKA_EXTRA_CONFIG",
        '{"sasl.oauthbearer.method": "oidc", "sasl.oauthbearer.client.secret": "hunter2-canary"}',
    )
    config = load_settings().kafka.client_config()
    assert config["sasl.mechanism"] == "OAUTHBEARER"
    assert config["sasl.oauthbearer.client.secret"] == "hunter2-canary"
    assert "sasl.password" not in config


def test_extra_kafka_config_reaches_every_client_as_strings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(
        "PULSE_KAFKA_EXTRA_CONFIG",
        '{"client.id": "pulse-a", "socket.keepalive.enable": true, "linger.ms": 5,'
        ' "ssl.key.password": "hunter2-canary"}',
    )
    kafka = load_settings().kafka
    assert kafka.client_config() | {"bootstrap.servers": "-"} == {
        "bootstrap.servers": "-",
        "security.protocol": "PLAINTEXT",
        "client.id": "pulse-a",
        "socket.keepalive.enable": "true",
        "linger.ms": "5",
        "ssl.key.password": "hunter2-canary",
    }
    assert kafka.extra_config["client.id"] == "pulse-a"  # only the secret is hidden
    for text in (repr(kafka), str(kafka), kafka.model_dump_json(), str(kafka.model_dump())):
        assert "hunter2-canary" not in text
        assert "pulse-a" in text


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ('{"group.id": "other"}', "PULSE_KAFKA_CONSUMER_GROUP"),
        ('{"enable.auto.commit": true}', "exactly-once"),
        ('{"bootstrap.servers": "x:9092"}', "PULSE_KAFKA_BOOTSTRAP_SERVERS"),
        ('["client.id"]', "valid dictionary"),
    ],
)
def test_extra_kafka_config_refuses_what_pulse_sets(
    monkeypatch: pytest.MonkeyPatch, extra: str, named: str
) -> None:
    monkeypatch.setenv("PULSE_KAFKA_EXTRA_CONFIG", extra)
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "PULSE_KAFKA_EXTRA_CONFIG: " in str(error.value)
    assert named in str(error.value)


def test_secrets_never_show_in_repr_or_dump(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_MONGO_URI", "mongodb://pulse:hunter2-canary@db:27017")
    monkeypatch.setenv("PULSE_PREFECT_API_AUTH_STRING", "admin:hunter2-canary")
    settings = load_settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-canary" not in text


def test_invalid_secret_value_is_not_echoed_in_the_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_MONGO_URI", "postgres://pulse:hunter2-canary@db")
    with pytest.raises(SettingsError) as error:
        load_settings()
    assert "PULSE_MONGO_URI" in str(error.value)
    assert "hunter2-canary" not in str(error.value)


def test_env_example_documents_every_setting_and_is_current() -> None:
    text = env_example()
    for name in all_env_names():
        assert f"# {name}=" in text
    assert (REPO / ".env.example").read_text() == text, "run: pulse config example > .env.example"


def test_every_field_has_a_description() -> None:
    for _, model in sections():
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} needs a docstring"


def test_config_show_prints_maps_as_json_with_secrets_masked() -> None:
    printed = shown({"client.id": "pulse", "ssl.key.password": SecretStr("hunter2-canary")})
    assert printed == '{"client.id":"pulse","ssl.key.password":"**********"}'
