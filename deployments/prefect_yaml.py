"""Write deployments/prefect.yaml (work pools) from deployments/definitions.py.

    uv run python -m deployments.prefect_yaml     # after changing definitions.py

The stream's parameters are the settings' defaults; a unit test checks the file is current.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import prefect
import yaml

from deployments.definitions import Definition, definitions
from pulse.config import GeneratorSettings, RetentionSettings

PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
POOL = {"name": "pulse-process", "work_queue_name": "default"}

HEADER = """\
# Work-pool deployments of Pulse, for running flows on workers instead of `make run`'s serve.
# Generated from deployments/definitions.py by `python -m deployments.prefect_yaml`: edit
# that file, not this one.
#
#   prefect work-pool create pulse-process --type process        # once
#   prefect deploy --prefect-file deployments/prefect.yaml --all # from the repository root
#   prefect worker start --pool pulse-process                    # on each machine, repo root
#
# Workers run flows in the directory `prefect deploy` ran in (no pull step given) and read
# the same PULSE_* variables / .env as everything else.
#
# Scale-out: each run of aggregate-interactions/drain joins the consumer group and gets a
# share of the topic's partitions. To run N consumers, give the drain N schedules of the same
# interval, a concurrency limit of 2N, and start workers on as many machines as you like; N is
# at most the number of partitions (PULSE_KAFKA_PARTITIONS).
#
# Other pools: for a Docker pool (`--type docker`) add `job_variables: {image: pulse:latest}`
# (the image built by the repository's Dockerfile) and `env` with the PULSE_* variables; for
# Kubernetes (`--type kubernetes`) the same image plus `namespace` and resource requests.
"""


def _entry(definition: Definition) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": definition.name,
        "entrypoint": definition.entrypoint,
        "description": definition.description,
        "tags": list(definition.tags),
        "work_pool": dict(POOL),
    }
    if definition.limit is not None:
        entry["concurrency_limit"] = {
            "limit": definition.limit,
            "collision_strategy": "CANCEL_NEW",
        }
    if definition.every is not None:
        entry["schedules"] = [{"interval": int(definition.every.total_seconds())}]
    if definition.parameters:
        entry["parameters"] = definition.parameters
    return entry


def render(generator: GeneratorSettings) -> str:
    """prefect.yaml's text for these definitions."""
    project = {
        "name": "pulse",
        "prefect-version": prefect.__version__,
        "build": None,
        "push": None,
        "deployments": [_entry(d) for d in definitions(generator, RetentionSettings())],
    }
    return HEADER + "\n" + yaml.safe_dump(project, sort_keys=False, width=100)


def main() -> None:
    PREFECT_YAML.write_text(render(GeneratorSettings()))
    print(f"wrote {PREFECT_YAML}")  # noqa: T201 - a developer command


if __name__ == "__main__":
    main()
