"""`pulse run` (`make run`) starts the runner and the dashboard from the repository."""

from __future__ import annotations

from pulse.cli.run import DASHBOARD, REPO, _apps
from pulse.config import Settings


def test_make_run_starts_the_served_deployments_and_the_dashboard() -> None:
    assert (REPO / "pyproject.toml").is_file()
    assert DASHBOARD.is_file()
    apps = _apps(Settings())
    assert apps["serve"][-1] == "deployments.serve"
    assert str(DASHBOARD) in apps["dashboard"]
