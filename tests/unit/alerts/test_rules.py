"""Alert rules: loaded from YAML, refused with the rule and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from pulse.alerts.rules import RuleError, load_rules_file, merge, parse_rules

REPO = Path(__file__).resolve().parents[3]


def test_the_shipped_rules_file_is_valid() -> None:
    rules = load_rules_file(REPO / "alerts.yaml")
    assert {rule.id for rule in rules} == {"hot-item", "item-surge", "purchase-spike", "busy-user"}


def test_a_missing_file_means_no_rules(tmp_path: Path) -> None:
    assert load_rules_file(tmp_path / "none.yaml") == []


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ({"id": "a", "metric": "item_views", "threshold": 5}, "rule 'a' in test: metric"),
        ({"id": "b", "metric": "item_interactions", "threshold": 0}, "rule 'b' in test: threshold"),
        ({"id": "c", "metric": "item_interactions"}, "rule 'c' in test: threshold: Field required"),
        (
            {"id": "d", "metric": "item_interactions", "threshold": 5, "window_minutes": 7},
            "rule 'd' in test: rule: Value error, window_minutes must divide a day",
        ),
        (
            {"id": "e", "metric": "user_interactions", "threshold": 5, "window_minutes": 5},
            "counted per minute",
        ),
        ({"id": "f", "metric": "item_interactions", "threshold": 5, "colour": "red"}, "colour"),
        ({"id": "bad id!", "metric": "item_interactions", "threshold": 5}, "id: String should"),
        (
            {"id": "g", "metric": "item_interactions", "threshold": 5, "interaction_type": "Buy"},
            "rule 'g' in test: interaction_type",
        ),
        (
            {"id": "h", "metric": "user_interactions", "threshold": 5, "baseline_windows": 5},
            "rule 'h' in test: rule: Value error, baseline_windows applies to item_interactions",
        ),
        (
            {
                "id": "k",
                "metric": "item_interactions",
                "threshold": 5,
                "window_minutes": 15,
                "baseline_windows": 8,
            },
            "window_minutes x (baseline_windows + 1) is 135 min; at most 120",
        ),
        (
            {"id": "n", "metric": "item_conversion", "threshold": 0.1},
            "rule 'n' in test: rule: Value error, conversion: [from, to] is what item_conversion",
        ),
        (
            {"id": "p", "metric": "item_conversion", "threshold": 2, "conversion": ["v", "p"]},
            "item_conversion takes a threshold of at most 1",
        ),
        (
            {"id": "q", "metric": "item_conversion", "threshold": 0.1, "conversion": ["v", "P"]},
            "conversion: 'P' is no interaction type",
        ),
        (
            {"id": "m", "metric": "item_interactions", "threshold": 5, "ratio": 1},
            "rule 'm' in test: ratio: Input should be greater than 1",
        ),
    ],
)
def test_invalid_rules_are_refused_naming_rule_and_field(
    rule: dict[str, object], message: str
) -> None:
    with pytest.raises(RuleError) as error:
        parse_rules([rule], "test")
    assert message in str(error.value)


def test_duplicate_ids_are_refused() -> None:
    rule = {"id": "x", "metric": "item_interactions", "threshold": 5}
    with pytest.raises(RuleError, match="'x' in test: id: used twice"):
        parse_rules([rule, rule], "test")


def test_a_file_without_a_rules_list_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("- id: x\n")
    with pytest.raises(RuleError, match="expected a top-level 'rules:' list"):
        load_rules_file(path)


def test_database_rules_replace_file_rules_and_disabled_ones_drop_out() -> None:
    base = {"metric": "item_interactions", "threshold": 5}
    file_rules = parse_rules([{"id": "a", **base}, {"id": "b", **base}], "file")
    stored = parse_rules(
        [{"id": "a", **base, "threshold": 9}, {"id": "b", **base, "enabled": False}], "db"
    )
    merged = merge(file_rules, stored)
    assert [(rule.id, rule.threshold) for rule in merged] == [("a", 9)]
