"""Checks at start-up that the configured services answer, failing with one line that names
the setting to fix, instead of clients retrying silently (Kafka) or timing out deep inside a
batch (MongoDB)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from pymongo import uri_parser
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from pulse.config import KafkaSettings, MongoSettings
from pulse.kafka.clients import broker_count
from pulse.store.client import mongo_client


class ServiceUnavailableError(RuntimeError):
    """A configured service does not answer; the message names the setting."""


def check_kafka(kafka: KafkaSettings, timeout: float = 10.0) -> None:
    """The brokers in PULSE_KAFKA_BOOTSTRAP_SERVERS answer a metadata request."""
    try:
        brokers = broker_count(kafka, timeout)
    except KafkaException as exc:
        raise ServiceUnavailableError(
            f"PULSE_KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers} does not answer "
            f"({exc.args[0].str()}); is the broker up (`make up`) and the address right?"
        ) from None
    if not brokers:
        raise ServiceUnavailableError(
            f"PULSE_KAFKA_BOOTSTRAP_SERVERS={kafka.bootstrap_servers}: no broker in the metadata"
        )


def check_mongo(mongo: MongoSettings, timeout_ms: int | None = None) -> None:
    """The server in PULSE_MONGO_URI answers a ping (credentials included)."""
    uri = mongo.uri.get_secret_value()
    try:
        hosts = ", ".join(f"{h}:{p}" for h, p in uri_parser.parse_uri(uri)["nodelist"])
    except (ConfigurationError, ValueError) as exc:
        raise ServiceUnavailableError(
            f"PULSE_MONGO_URI is not a valid MongoDB URI: {exc}"
        ) from None
    client = mongo_client(mongo, "pulse-preflight", timeout_ms=timeout_ms)
    try:
        client.admin.command("ping")
    except OperationFailure as exc:
        raise ServiceUnavailableError(
            f"PULSE_MONGO_URI: {hosts} refused the credentials or command ({exc.code})"
        ) from None
    except PyMongoError as exc:
        # The error text may repeat the URI: only the hosts are shown (no credentials).
        raise ServiceUnavailableError(
            f"PULSE_MONGO_URI: MongoDB at {hosts} does not answer ({type(exc).__name__}); "
            "is it up (`make up`) and the address right?"
        ) from None
    finally:
        client.close()
