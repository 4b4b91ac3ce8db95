"""tests/unit/ mirrors the tree, so a module's tests are found from its path:
tests/unit/ingest/test_validate.py tests pulse/ingest/validate.py."""

from __future__ import annotations

from pathlib import Path

UNIT = Path(__file__).resolve().parent
REPO = UNIT.parents[1]
PROJECT_FOLDERS = {"bench", "deployments", "flows", "streamlit_app", "tasks"}
"""Folders beside pulse/ whose pieces have unit tests of their own."""


def _where(test: Path) -> str:
    return "" if test.parent == UNIT else test.parent.relative_to(UNIT).as_posix()


def test_every_folder_of_the_unit_tests_is_a_package_of_pulse_or_a_project_folder() -> None:
    packages = {path.parent.name for path in (REPO / "pulse").glob("*/__init__.py")}
    folders = {_where(init) for init in UNIT.glob("*/__init__.py")}
    assert folders, "no test folders found"
    assert folders <= packages | PROJECT_FOLDERS, folders - packages - PROJECT_FOLDERS


def test_a_test_named_after_a_module_of_pulse_sits_in_that_modules_folder() -> None:
    homes: dict[str, set[str]] = {}
    for module in (REPO / "pulse").glob("**/*.py"):
        package = module.parent.relative_to(REPO / "pulse").as_posix()
        homes.setdefault(module.stem, set()).add("" if package == "." else package)
    tests = list(UNIT.glob("**/test_*.py"))
    misplaced = {
        test.relative_to(REPO).as_posix(): sorted(homes[stem])
        for test in tests
        if (stem := test.stem.removeprefix("test_")) in homes and _where(test) not in homes[stem]
    }
    assert len(tests) > 40, "unit tests not found"
    assert not misplaced, f"move them beside their module's path: {misplaced}"
