"""docker-compose.yml cannot run here (no Docker engine), so check its shape against the code."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from pulse.config import MetricsSettings, StackSettings, all_env_names
from pulse.stack.kafka_jars import read_lock
from pulse.stack.prefect_server import retention_env

REPO = Path(__file__).resolve().parents[2]
METRICS = MetricsSettings().port


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    services = compose["services"]
    assert isinstance(services, dict)
    return services


def test_the_whole_pipeline_is_there(compose: dict[str, Any]) -> None:
    services = _services(compose)
    assert set(services) == {"kafka", "mongo", "prefect", "pipeline", "dashboard"}
    assert services["kafka"]["image"].startswith("apache/kafka:4.")
    assert services["mongo"]["image"].startswith("mongo:8.")
    assert services["prefect"]["image"].startswith("prefecthq/prefect:3")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_every_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in _services(compose).items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_only_the_uis_and_metrics_are_published_on_loopback(compose: dict[str, Any]) -> None:
    published = {
        name: service["ports"] for name, service in _services(compose).items() if "ports" in service
    }
    assert published == {
        "prefect": ["127.0.0.1:4200:4200"],
        "dashboard": ["127.0.0.1:8501:8501"],
        "pipeline": [f"127.0.0.1:{METRICS}:{METRICS}"],
    }


def test_stateful_services_use_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    services = _services(compose)
    for name in ("kafka", "mongo", "prefect"):
        volumes = services[name]["volumes"]
        named = {volume.split(":")[0] for volume in volumes}
        assert named and named <= declared, f"{name} must keep its data in a named volume"


def test_pulse_variables_are_settings_the_code_reads(compose: dict[str, Any]) -> None:
    known = all_env_names()
    for name, service in _services(compose).items():
        env = service.get("environment", {})
        pulse_vars = {key for key in env if key.startswith("PULSE_")}
        assert pulse_vars <= known, f"{name} sets unknown {pulse_vars - known}"
    for name in ("pipeline", "dashboard"):
        env = _services(compose)[name]["environment"]
        assert env["PULSE_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["PULSE_MONGO_URI"] == "mongodb://mongo:27017"
        assert env["PULSE_PREFECT_API_URL"] == "http://prefect:4200/api"


def test_app_services_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    services = _services(compose)
    for name, needs in {"pipeline": {"kafka", "mongo", "prefect"}, "dashboard": {"mongo"}}.items():
        depends = services[name]["depends_on"]
        assert set(depends) == needs
        assert all(rule["condition"] == "service_healthy" for rule in depends.values())


def test_the_prefect_server_image_runs_the_locked_prefect(compose: dict[str, Any]) -> None:
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    (locked,) = [package["version"] for package in lock["package"] if package["name"] == "prefect"]
    image = _services(compose)["prefect"]["image"]
    assert image == f"prefecthq/prefect:{locked}-python3.11"


def test_secrets_in_env_files_stay_out_of_the_image() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".env.*" in ignored and "!.env.example" in ignored


def test_the_image_holds_what_runs_and_no_more() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {"tests", "bench", "docs", ".ci", ".venv", ".state", ".git"} <= set(ignored)
    dockerfile = (REPO / "Dockerfile").read_text()
    stages = [line for line in dockerfile.splitlines() if line.startswith("FROM ")]
    assert len(stages) == 2 and stages[0].endswith(" AS build")  # uv stays in the first
    assert "UV_COMPILE_BYTECODE=1" in dockerfile and "compileall" in dockerfile
    assert "--no-dev" in dockerfile


def test_service_images_match_what_the_code_runs(compose: dict[str, Any]) -> None:
    services = _services(compose)
    (kafka,) = [jar.version for jar in read_lock() if jar.artifact == "kafka_2.13"]
    assert services["kafka"]["image"] == f"apache/kafka:{kafka}"
    assert re.fullmatch(r"mongo:\d+\.\d+", services["mongo"]["image"]), "pin a minor version"


def test_one_image_is_built_tagged_and_shared(compose: dict[str, Any]) -> None:
    services = _services(compose)
    built = {name for name, service in services.items() if "build" in service}
    assert built == {"pipeline"}, "the image is built once"
    for name in ("pipeline", "dashboard"):
        assert services[name]["image"] == "pulse:latest", name
    assert services["dashboard"]["pull_policy"] == "never"


def test_env_file_is_read_at_start_and_optional(compose: dict[str, Any]) -> None:
    for name in ("pipeline", "dashboard"):
        assert _services(compose)[name]["env_file"] == [{"path": ".env", "required": False}]


def test_the_pipeline_health_check_probes_its_own_metrics_endpoint(compose: dict[str, Any]) -> None:
    pipeline = _services(compose)["pipeline"]
    probe = " ".join(pipeline["healthcheck"]["test"])
    assert f"http://127.0.0.1:{METRICS}/metrics" in probe
    assert pipeline["environment"]["PULSE_METRICS_HOST"] == "0.0.0.0"  # noqa: S104 - in its container


def test_the_prefect_server_keeps_what_make_run_keeps(compose: dict[str, Any]) -> None:
    env = _services(compose)["prefect"]["environment"]
    wanted = retention_env(round(StackSettings().prefect_retention_days * 86_400))
    assert {key: env[key] for key in wanted} == wanted


def test_the_dashboard_takes_its_options_from_the_shared_config(compose: dict[str, Any]) -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] == "127.0.0.1" and config["server"]["headless"]
    assert config["browser"]["gatherUsageStats"] is False
    command = _services(compose)["dashboard"]["command"]
    assert command == ["streamlit", "run", "streamlit_app/app.py", "--server.address=0.0.0.0"]
