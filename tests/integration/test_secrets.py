"""A canary test: secret values set in the settings appear in no log line, Prefect run log,
dead letter, ledger entry, alert, notification or CLI output."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Log
from prefect.client.schemas.sorting import FlowRunSort
from prefect.logging.handlers import APILogHandler

from flows.aggregate import aggregate_interactions
from flows.generate import generate_interactions
from pulse.config import Settings, load_settings
from pulse.generate.params import GeneratorParams
from pulse.store.client import database, mongo_client
from pulse.store.schema import ALERT_STATE, ALERTS, DEAD_LETTERS, LEDGER, OFFSETS, TOTALS
from tests.integration.reconcile import run_pulse, subprocess_env

pytestmark = pytest.mark.integration

CANARY = "canary-s3cret-7Qx9"
RULES = """
rules:
  - id: canary-hot
    metric: item_interactions
    window_minutes: 1
    threshold: 50
    channels: [all]
"""


def _uri_with_credentials(settings: Settings) -> str | None:
    """The Mongo URI with a canary password, where the server accepts any (FerretDB)."""
    with mongo_client(settings.mongo) as client:
        if "ferretdbVersion" not in client.admin.command("buildInfo"):
            return None  # a real mongod would refuse an unknown user
    host = settings.mongo.uri.get_secret_value().split("//", 1)[1].split("/", 1)[0]
    return f"mongodb://pulse:{CANARY}@{host}/?authMechanism=PLAIN&authSource=%24external"


def test_secret_values_leak_nowhere(
    pipeline: Settings,
    prefect_api: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    webhook: tuple[str, list[dict[str, Any]]],
) -> None:
    caplog.set_level(logging.DEBUG)
    url, received = webhook
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    secrets = {
        "PULSE_PREFECT_API_AUTH_STRING": f"admin:{CANARY}",
        "PULSE_KAFKA_SASL_MECHANISM": "PLAIN",
        "PULSE_KAFKA_SASL_USERNAME": "pulse",
        "PULSE_KAFKA_SASL_PASSWORD": CANARY,
        "PULSE_KAFKA_EXTRA_CONFIG": json.dumps(
            {"client.id": "pulse-canary", "sasl.oauthbearer.client.secret": CANARY}
        ),
        "PULSE_ALERTS_CHANNELS": json.dumps(
            {
                "hook": url.replace("json://", f"json://pulse:{CANARY}@"),
                "down": f"json://pulse:{CANARY}@127.0.0.1:9/alerts?token={CANARY}",
            }
        ),
        "PULSE_ALERTS_RULES_FILE": str(rules),
        "PULSE_ALERTS_CHANNEL_TIMEOUT_SECONDS": "2",
    }
    uri = _uri_with_credentials(pipeline)
    if uri:
        secrets["PULSE_MONGO_URI"] = uri
    environment = subprocess_env(pipeline) | secrets
    for name, value in environment.items():
        if name.startswith("PULSE_"):
            monkeypatch.setenv(name, value)
    assert load_settings().kafka.sasl_password is not None

    generated = generate_interactions(
        GeneratorParams(
            events=4_000,
            batch_size=1_000,
            interval_seconds=0,
            malformed_fraction=0.02,
            seed=5,
            hot_item="hot-canary",
            hot_share=0.3,
        )
    )
    drained = aggregate_interactions(time_budget_seconds=120, max_batch_events=10_000)
    assert drained["dead_lettered"] > 0

    # Where the secrets could have gone:
    seen: list[str] = [caplog.text]
    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        for name in (DEAD_LETTERS, LEDGER, ALERTS, ALERT_STATE, TOTALS, OFFSETS):
            docs = list(db[name].find())
            seen.append(repr(docs))
        alerts = list(db[ALERTS].find())
    assert alerts, "an alert fired and was delivered"
    assert any(d["ok"] for a in alerts for d in a["deliveries"])
    seen.append(json.dumps(received))
    APILogHandler().flush()  # run logs reach the API in the background; send what is queued
    with get_client(sync_client=True) as prefect:
        recent = [
            run.id for run in prefect.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=10)
        ]
        runs_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=recent))
        logs: list[Log] = []
        while page := prefect.read_logs(log_filter=runs_filter, limit=200, offset=len(logs)):
            logs += page  # the API serves at most 200 per request
        seen += [log.message for log in logs]
    assert logs, "the runs left logs to check"
    for command in (["config", "show"], ["consume", "--time-budget", "3"]):
        bad_host = environment | {
            "PULSE_MONGO_URI": f"mongodb://pulse:{CANARY}@127.0.0.1:1/?authMechanism=PLAIN",
            "PULSE_MONGO_TIMEOUT_MS": "1000",
        }
        result = run_pulse(*command, env=bad_host)
        seen += [result.stdout, result.stderr]
    captured = capfd.readouterr()
    seen += [captured.out, captured.err]

    leaks = [text for text in seen if CANARY in text]
    assert leaks == [], leaks[0][:2_000] if leaks else ""
    assert generated["events"] > 0
