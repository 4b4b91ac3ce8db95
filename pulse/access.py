"""Who may open the dashboard once signed in: the account's e-mail against
PULSE_DASHBOARD_ALLOWED_USERS (*pure*).

An entry is an address (``alice@example.com``), a whole domain (``@example.com``: its
addresses, not its subdomains'), or ``*`` for every account of the identity provider.
Addresses compare without regard to case, as providers do not agree on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

ANYONE = "*"
"""The entry that admits every account the identity provider signs in."""
_ADDRESS = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DOMAIN = re.compile(r"^@[^@\s]+\.[^@\s]+$")


def allowlist_entry(entry: str) -> str:
    """`entry` as compared (lower case), or ValueError naming what it should look like."""
    cleaned = entry.strip().lower()
    if cleaned == ANYONE or _ADDRESS.match(cleaned) or _DOMAIN.match(cleaned):
        return cleaned
    raise ValueError(
        f"{entry!r} is neither an e-mail address (alice@example.com), a domain "
        f"(@example.com) nor {ANYONE}"
    )


def verified_claim(value: object) -> bool | None:
    """The `email_verified` claim as a bool; some providers send the strings "true"/"false"."""
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def admits(allowed: Sequence[str], email: str | None, email_verified: bool | None) -> bool:
    """Whether an account with this e-mail claim may open the dashboard. An address the
    provider says it has not verified is refused: anyone can type one in at some providers.
    Providers that send no `email_verified` claim vouch for their addresses themselves."""
    if ANYONE in allowed:
        return True
    if not email or email_verified is False:
        return False
    address = email.strip().lower()
    domain = "@" + address.rpartition("@")[2]
    return address in allowed or domain in allowed
