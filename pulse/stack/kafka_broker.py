"""Apache Kafka 4.x in KRaft combined mode, run from Maven Central jars (no Docker, no tarball)."""

from __future__ import annotations

import base64
import hashlib
import logging
import shutil
import subprocess
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from pulse.config import KafkaSettings, StackSettings
from pulse.stack.prerequisites import require_java, require_tool
from pulse.stack.process import port_open
from pulse.stack.service import Endpoint, Launch, LocalService, Say

KAFKA_FILES = Path(__file__).parent / "kafka"
POM = KAFKA_FILES / "pom.xml"
LOG_CONFIG = KAFKA_FILES / "log4j2.xml"

# The JVM flags of Kafka's own bin/kafka-run-class.sh and kafka-server-start.sh.
JVM_FLAGS = [
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
]

_quiet = logging.getLogger("pulse.stack.kafka-probe")
_quiet.setLevel(logging.CRITICAL)  # a probe of a broker that is still starting is expected to fail


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
        admin = AdminClient(dict(self.kafka.client_config()), logger=_quiet)
        try:
            metadata = admin.list_topics(timeout=2)
        except Exception:
            return False
        return bool(metadata.brokers)

    @property
    def libs(self) -> Path:
        """Jar folder in the cache, keyed by the pom's content so a version bump refetches."""
        digest = hashlib.sha256(POM.read_bytes()).hexdigest()[:12]
        return self.stack.cache_dir / "kafka" / digest / "libs"

    def prepare(self, say: Say) -> Launch:
        java = require_java(17)
        self._fetch_jars(say)
        properties = self._write_properties()
        self._format_storage_once(java, properties, say)
        heap = self.stack.kafka_heap
        command = [
            java,
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

    def _fetch_jars(self, say: Say) -> None:
        if self.libs.is_dir() and any(self.libs.glob("kafka_2.13-*.jar")):
            return
        mvn = require_tool(
            "mvn",
            "needed once to fetch the Kafka broker jars from Maven Central",
            "install it, e.g. `apt-get install -y maven`",
        )
        say("fetching Kafka broker jars from Maven Central (first run only)")
        staging = self.libs.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        result = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(POM),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={staging}",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"mvn could not fetch the Kafka jars:\n{result.stdout[-3000:]}")
        staging.rename(self.libs)  # atomic: a half-finished fetch is never mistaken for a cache

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
