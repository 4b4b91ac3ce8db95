"""Who may open the dashboard: PULSE_DASHBOARD_ALLOWED_USERS against the signed-in account."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pulse.access import ANYONE, admits, allowlist_entry, verified_claim
from pulse.config import SettingsError, load_settings

ALLOWED = ("alice@example.com", "@corp.example")


@pytest.mark.parametrize(
    ("email", "verified", "admitted"),
    [
        ("alice@example.com", True, True),
        ("Alice@Example.COM", None, True),  # no claim: the provider vouches for it
        ("alice@example.com", False, False),  # the provider says it is unverified
        ("bob@example.com", True, False),  # another address of a listed address's domain
        ("bob@corp.example", True, True),
        ("bob@sub.corp.example", True, False),  # a domain admits its own addresses only
        ("bob@evilcorp.example", True, False),
        ("corp.example@evil.example", True, False),
        (None, None, False),
        ("", True, False),
    ],
)
def test_addresses_and_domains_admit_exactly_their_accounts(
    email: str | None, verified: bool | None, admitted: bool
) -> None:
    assert admits(ALLOWED, email, verified) is admitted


def test_anyone_admits_every_account_of_the_provider() -> None:
    assert admits((ANYONE,), None, None)
    assert admits((ANYONE,), "x@y.z", False)


@given(local=st.from_regex(r"[a-z0-9.]{1,10}", fullmatch=True), prefix=st.text("ab.", min_size=1))
def test_a_domain_never_admits_a_domain_that_merely_ends_like_it(local: str, prefix: str) -> None:
    assert not admits(("@corp.example",), f"{local}@{prefix}corp.example", True)


@pytest.mark.parametrize(("claim", "seen"), [(True, True), ("false", False), ("TRUE", True)])
def test_the_verified_claim_is_read_as_providers_send_it(claim: object, seen: bool) -> None:
    assert verified_claim(claim) is seen
    assert verified_claim(None) is None


@pytest.mark.parametrize("entry", ["alice", "@example", "a@b@c.d", "", "alice @example.com"])
def test_an_entry_that_is_no_address_or_domain_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="neither an e-mail address"):
        allowlist_entry(entry)


def test_the_setting_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_DASHBOARD_ALLOWED_USERS", '["ops@example.com", "intern"]')
    with pytest.raises(SettingsError, match=r"PULSE_DASHBOARD_ALLOWED_USERS: .*'intern'"):
        load_settings()
    monkeypatch.setenv("PULSE_DASHBOARD_ALLOWED_USERS", '[" Ops@Example.com "]')
    assert load_settings().dashboard.allowed_users == ("ops@example.com",)


def test_login_without_an_allowlist_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSE_DASHBOARD_REQUIRE_LOGIN", "true")
    with pytest.raises(SettingsError, match="admits nobody until PULSE_DASHBOARD_ALLOWED_USERS"):
        load_settings()
