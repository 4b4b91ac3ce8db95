"""Dead letters fixed and replayed are counted exactly once, even if the replay is interrupted."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.replay import replay_dead_letters
from pulse.config import Settings, load_settings
from pulse.pipeline import dead_letter_replay
from pulse.pipeline.opening import open_pipeline
from pulse.store import writes
from pulse.store.client import database, mongo_client
from pulse.store.schema import DEAD_LETTERS, TOTALS, TOTALS_ID
from tests.integration.reconcile import (
    drain_until_caught_up,
    produce,
    snapshot,
    use_settings_env,
)

pytestmark = pytest.mark.integration

TYPES_WITH_TELEPORT = ["view", "click", "add_to_cart", "purchase", "teleport"]


def _teleports(settings: Settings) -> int:
    with mongo_client(settings.mongo) as client:
        db = database(client, settings.mongo)
        return db[DEAD_LETTERS].count_documents({"field": "interaction_type", "status": "dead"})


def test_fixed_dead_letters_are_revived_exactly_once(
    pipeline: Settings, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, truth = produce(pipeline, tmp_path / "truth.json", events=20_000, malformed=0.05)
    drain_until_caught_up(pipeline)
    teleports = _teleports(pipeline)
    assert teleports > 0  # the generator's "unknown_type" records use the type 'teleport'

    # The fix: 'teleport' becomes a known interaction type.
    use_settings_env(monkeypatch, pipeline)
    monkeypatch.setenv(
        "PULSE_GENERATOR_INTERACTION_TYPES", str(TYPES_WITH_TELEPORT).replace("'", '"')
    )
    fixed = load_settings(
        **{"kafka": pipeline.kafka.model_dump(), "mongo": pipeline.mongo.model_dump()}
    )
    assert "teleport" in fixed.generator.interaction_types

    # An interrupted replay: the process dies after the users were written.
    real_upsert = writes.upsert_guarded
    calls = {"n": 0}

    def dies_after_users(*args: object, **kwargs: object) -> object:
        result = real_upsert(*args, **kwargs)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("killed")
        return result

    monkeypatch.setattr(writes, "upsert_guarded", dies_after_users)
    with pytest.raises(RuntimeError), open_pipeline(fixed) as opened:
        dead_letter_replay.replay(opened.writer, field_name="interaction_type")
    monkeypatch.setattr(writes, "upsert_guarded", real_upsert)

    result = replay_dead_letters(field="interaction_type")
    assert result["revived"] == teleports  # the interrupted replay was finished, not repeated
    assert result["selected"] == 0  # nothing else was still dead for that field

    with mongo_client(pipeline.mongo) as client:
        db = database(client, pipeline.mongo)
        totals = db[TOTALS].find_one({"_id": TOTALS_ID})
        assert totals is not None
        assert totals["types"]["teleport"] == teleports
        assert totals["events"] == truth["events"] + teleports
        assert totals["dead_lettered"] == truth["malformed"] - teleports
        revived = db[DEAD_LETTERS].count_documents({"status": "replayed"})
        assert revived == teleports
        before = snapshot(db)

    again = replay_dead_letters(field="interaction_type")
    assert again["revived"] == 0 and again["selected"] == 0
    with mongo_client(pipeline.mongo) as client:
        assert snapshot(database(client, pipeline.mongo)) == before
