"""Apache Kafka 4.x in KRaft combined mode, run from Maven Central jars (no Docker, no tarball,
no Maven: pulse/stack/kafka_jars.py)."""

from __future__ import annotations

import base64
import subprocess
import uuid
from pathlib import Path

from pulse.config import KafkaSettings, StackSettings
from pulse.kafka.clients import broker_count
from pulse.stack import kafka_jars
from pulse.stack.prerequisites import require_java
from pulse.stack.process import port_open
from pulse.stack.service import Endpoint, Launch, LocalService, Say

LOG_CONFIG = kafka_jars.KAFKA_FILES / "log4j2.xml"

# The JVM flags of Kafka's own bin/kafka-run-class.sh and kafka-server-start.sh.
JVM_FLAGS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]


class KafkaBroker(LocalService):
    """A single-node broker+controller on 127.0.0.1."""

    name = "kafka"

    def __init__(self, kafka: KafkaSettings, stack: StackSettings) -> None:
        super().__init__(stack.state_dir)
        self.kafka = kafka
        self.stack = stack
        first_server = kafka.bootstrap_servers.split(",")[0].strip()
        self._endpoint = Endpoint.parse(first_server, 9092)

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    @property
    def url(self) -> str:
        return self.kafka.bootstrap_servers

    def answers(self) -> bool:
        if not port_open(self.endpoint.host, self.endpoint.port):
            return False
        try:
            return broker_count(self.kafka, timeout=2) > 0
        except Exception:  # a broker still starting is expected not to answer yet
            return False

    @property
    def libs(self) -> Path:
        """Jar folder in the cache, keyed by the lock's content so a version bump refetches."""
        return self.stack.cache_dir / "kafka" / kafka_jars.lock_digest() / "libs"

    def prepare(self, say: Say) -> Launch:
        java = require_java(17)
        say(f"java {java.version} from {java.source}: {java.path}")
        if not self.libs.is_dir():
            say("fetching the Kafka broker's jars from Maven Central (first run only)")
            self.libs.parent.mkdir(parents=True, exist_ok=True)
            kafka_jars.fetch(self.libs, say)
        properties = self._write_properties()
        self._format_storage_once(java.path, properties, say)
        heap = self.stack.kafka_heap
        command = [
            java.path,
            f"-Xms{heap}",
            f"-Xmx{heap}",
            *JVM_FLAGS,
            f"-Dlog4j2.configurationFile={LOG_CONFIG}",
            f"-Dkafka.logs.dir={self.home / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(properties),
        ]
        return Launch(command)

    def _write_properties(self) -> Path:
        host, port = self.endpoint.host, self.endpoint.port
        controller = f"{host}:{self.stack.kafka_controller_port}"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": controller,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{controller}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.home / "data"),
            "num.partitions": str(self.kafka.partitions),
            # Topics are created explicitly with the partitions asked for, never by accident.
            "auto.create.topics.enable": "false",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "12",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.retention.hours": "24",
        }
        path = self.home / "server.properties"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{key}={value}\n" for key, value in lines.items()))
        return path

    def _format_storage_once(self, java: str, properties: Path, say: Say) -> None:
        if (self.home / "data" / "meta.properties").exists():
            return
        say("formatting Kafka storage (first run only)")
        # Shaped like `kafka-storage.sh random-uuid`: 16 random bytes, URL-safe base64, unpadded.
        # Like Kafka's Uuid.randomUuid, never start with '-': the tool would read it as a flag.
        cluster_id = "-"
        while cluster_id.startswith("-"):
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        result = subprocess.run(
            [
                java,
                f"-Dlog4j2.configurationFile={LOG_CONFIG}",
                "-cp",
                f"{self.libs}/*",
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "-t",
                cluster_id,
                "-c",
                str(properties),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"Kafka storage format failed:\n{result.stdout}{result.stderr}")
