"""Kafka clients built from the settings: admin (topics), producer, consumer."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from pulse.config import KafkaSettings

log = logging.getLogger(__name__)


_quiet = logging.getLogger("pulse.kafka.probe")
_quiet.setLevel(logging.CRITICAL)  # a probe's caller reports its failure once, not each retry


def broker_count(kafka: KafkaSettings, timeout: float) -> int:
    """Brokers in the cluster's metadata, asked by a client that logs nothing; raises
    KafkaException when no broker answers within `timeout`."""
    admin = AdminClient(dict(kafka.client_config()), logger=_quiet)
    return len(admin.list_topics(timeout=timeout).brokers)


def admin_client(kafka: KafkaSettings) -> AdminClient:
    """An admin client for topic management and metadata.

    Its first request should be one that may wait (`list_topics`, as `ensure_topic` asks):
    librdkafka drops the bootstrap connection once it has learned the brokers, and a request
    caught in flight on it is retried only 1-3 s later (librdkafka 2.16; 23 of 300 fresh
    clients here)."""
    return AdminClient(dict(kafka.client_config()), logger=log)


def assigned_partitions(admin: AdminClient, group: str, timeout: float = 5.0) -> int:
    """Partitions held by the members of a consumer group right now.

    0 while it rebalances, and when the group coordinator does not answer in time (it may be
    loading, e.g. just after the broker started): callers poll this until it is what they need.
    """
    try:
        description = admin.describe_consumer_groups([group])[group].result(timeout=timeout)
    except (KafkaException, TimeoutError):
        return 0
    return sum(len(member.assignment.topic_partitions) for member in description.members)


def offset_bounds(
    admin: AdminClient, topic: str, partitions: Iterable[int], timeout: float
) -> dict[int, tuple[int, int]]:
    """Kafka's (oldest, next) offsets of each partition, in one request per end.

    Asked through an admin client because a broker answers one connection's requests in order:
    on a consumer's own connection the question waits behind its pending fetch, up to
    fetch.wait.max.ms (0.5 s) for each partition."""
    wanted = [TopicPartition(topic, partition) for partition in partitions]
    if not wanted:
        return {}
    earliest = OffsetSpec.earliest()  # type: ignore[no-untyped-call]  # untyped in 2.16
    latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
    oldest = admin.list_offsets(dict.fromkeys(wanted, earliest), request_timeout=timeout)
    newest = admin.list_offsets(dict.fromkeys(wanted, latest), request_timeout=timeout)
    low = {tp.partition: future.result().offset for tp, future in oldest.items()}
    high = {tp.partition: future.result().offset for tp, future in newest.items()}
    return {partition: (low[partition], high[partition]) for partition in sorted(high)}


def ensure_topic(
    kafka: KafkaSettings,
    topic: str | None = None,
    partitions: int | None = None,
    timeout: float = 30.0,
    admin: AdminClient | None = None,
) -> bool:
    """Create the topic with the configured partitions if it does not exist.

    Returns True if this call created it. An existing topic is left as it is, even if its
    partition count differs (shrinking is impossible and growing breaks key ordering).
    `admin`, when given, is the client to ask (and leaves it connected to the brokers).
    """
    name = topic or kafka.topic
    admin = admin or admin_client(kafka)
    if name in admin.list_topics(timeout=timeout).topics:
        return False
    new_topic = NewTopic(
        name,
        num_partitions=partitions or kafka.partitions,
        replication_factor=kafka.replication_factor,
    )
    future = admin.create_topics([new_topic], operation_timeout=timeout)[name]
    try:
        future.result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return False  # another process won the race: that is fine
        raise
    log.info("created topic %s with %d partitions", name, new_topic.num_partitions)
    return True


def delete_topic(kafka: KafkaSettings, topic: str, timeout: float = 30.0) -> None:
    """Delete a topic (tests and resets)."""
    admin = admin_client(kafka)  # must outlive the future, or librdkafka cancels the request
    admin.delete_topics([topic], operation_timeout=timeout)[topic].result(timeout)


def producer(kafka: KafkaSettings, **overrides: object) -> Producer:
    """An idempotent producer: no duplicates or reordering on retries, acks from all replicas."""
    config: dict[str, object] = {
        **kafka.client_config(),
        "logger": log,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 20,
        "batch.size": 1_000_000,
        "compression.type": "lz4",
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        # Once in ~5 broker restarts under load, the producer held records for minutes while the
        # broker was back (a stale leader waiting for the 5 min metadata refresh): bound it.
        "topic.metadata.refresh.interval.ms": 10_000,
        **kafka.extra_client_config(),  # may tune the above; what correctness needs is refused
        **overrides,
    }
    return Producer(config)


def consumer(
    kafka: KafkaSettings, group: str | None = None, **overrides: str | int | float | bool
) -> Consumer:
    """A consumer that never commits on its own: offsets advance once results are durable."""
    config: dict[str, object] = {
        **kafka.client_config(),
        "logger": log,
        "group.id": group or kafka.consumer_group,
        "session.timeout.ms": kafka.session_timeout_ms,
        # A member learns of a rebalance (a consumer run handing over to the next) at its
        # next heartbeat, and a cooperative handover takes two rounds: with 1 s heartbeats the
        # partitions moved waited 0.3-1.05 s between the revoke and the assignment in `make
        # run`. A heartbeat is one small request: 4 a second cost nothing worth counting.
        "heartbeat.interval.ms": min(250, kafka.session_timeout_ms // 3),
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": "cooperative-sticky",
        "fetch.max.bytes": 52_428_800,
        "max.partition.fetch.bytes": 10_485_760,
        **kafka.extra_client_config(),  # may tune the above; what correctness needs is refused
        **overrides,
    }
    return Consumer(config)
