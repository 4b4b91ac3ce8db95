"""Producer throughput: Pulse's generator+producer vs `kcat -P` sending the same messages.

Both produce the same pre-generated events (key = user_id) with the same producer settings
(idempotence, acks=all, lz4, linger 20 ms) to fresh 6-partition topics on the same broker,
alternating, `--repeat` times each; the medians are compared.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.common import console, fresh_topic, median_rate, report, timed
from pulse.config import Settings, load_settings
from pulse.generate.pacing import RatePlan
from pulse.generate.run import GeneratorRun
from pulse.generate.simulate import GeneratorConfig, InteractionGenerator
from pulse.kafka.producer import InteractionProducer

BATCH = 20_000
START_MS = 1_795_737_600_000
SHARED_CONFIG = {
    "enable.idempotence": "true",
    "acks": "all",
    "linger.ms": "20",
    "batch.size": "1000000",
    "compression.type": "lz4",
    "queue.buffering.max.messages": "1000000",
    "queue.buffering.max.kbytes": "1048576",
}


def _pre_encoded(events: int, path: Path) -> tuple[list[bytes], list[bytes]]:
    generator = InteractionGenerator(GeneratorConfig(), seed=1, run_id="bench")
    keys: list[bytes] = []
    payloads: list[bytes] = []
    for first in range(0, events, BATCH):
        burst = generator.burst(first, min(BATCH, events - first), START_MS + first, 1_000)
        keys += burst.keys
        payloads += burst.payloads
    path.write_bytes(b"".join(k + b"\t" + v + b"\n" for k, v in zip(keys, payloads, strict=True)))
    return keys, payloads


def _kcat(settings: Settings, topic: str, path: Path) -> None:
    config = [arg for key, value in SHARED_CONFIG.items() for arg in ("-X", f"{key}={value}")]
    command = ["kcat", "-P", "-b", settings.kafka.bootstrap_servers, "-t", topic, "-K", "\t"]
    subprocess.run([*command, *config, "-l", str(path)], check=True)


def _pulse_generate_and_produce(settings: Settings, topic: str, events: int) -> None:
    plan = RatePlan(batch_size=BATCH, interval_seconds=0, events=events)
    with GeneratorRun(settings.kafka, plan, GeneratorConfig(), seed=1, topic=topic) as run:
        for slot in run.slots():
            run.send(slot)
        summary = run.finish()
    if summary.delivered != events:
        raise RuntimeError(f"delivered {summary.delivered} of {events}: {summary}")


def _pulse_produce_only(
    settings: Settings, topic: str, keys: list[bytes], values: list[bytes]
) -> None:
    with InteractionProducer(settings.kafka, topic) as producer:
        for first in range(0, len(values), BATCH):
            producer.send(keys[first : first + BATCH], values[first : first + BATCH])
        if producer.flush(120) or producer.failed:
            raise RuntimeError(f"{producer.failed} deliveries failed")


def main(
    events: Annotated[int, typer.Option(help="Messages per measurement.")] = 1_000_000,
    repeat: Annotated[int, typer.Option(help="Measurements per contender (median reported).")] = 3,
) -> dict[str, Any]:
    """Measure and print producer throughput ratios; write bench/results/producer.json."""
    if shutil.which("kcat") is None:
        console.print("[red]kcat is missing (the baseline): apt-get install -y kcat[/red]")
        raise typer.Exit(2)
    settings = load_settings()
    times: dict[str, list[float]] = {"kcat -P (pre-encoded)": [], "pulse produce (pre-encoded)": []}
    times["pulse generate + produce"] = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "messages.tsv"
        keys, values = _pre_encoded(events, path)
        for round_ in range(repeat):
            console.print(f"round {round_ + 1}/{repeat}")
            with fresh_topic(settings, "kcat") as topic:
                times["kcat -P (pre-encoded)"].append(timed(lambda: _kcat(settings, topic, path)))
            with fresh_topic(settings, "produce") as topic:
                seconds = timed(lambda: _pulse_produce_only(settings, topic, keys, values))
                times["pulse produce (pre-encoded)"].append(seconds)
            with fresh_topic(settings, "generate") as topic:
                seconds = timed(lambda: _pulse_generate_and_produce(settings, topic, events))
                times["pulse generate + produce"].append(seconds)
    baseline = median_rate(events, times["kcat -P (pre-encoded)"])
    rows = [
        {
            "contender": name,
            "events/s (median)": median_rate(events, seconds),
            "ratio vs kcat": median_rate(events, seconds) / baseline,
            "runs (s)": " ".join(f"{s:.2f}" for s in seconds),
        }
        for name, seconds in times.items()
    ]
    report("producer", rows, {"events": events, "repeat": repeat, "config": SHARED_CONFIG})
    return {"rows": rows}


if __name__ == "__main__":
    typer.run(main)
