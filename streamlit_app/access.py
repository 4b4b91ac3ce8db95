"""The dashboard's door with PULSE_DASHBOARD_REQUIRE_LOGIN: sign in with OpenID Connect
(st.login, configured in .streamlit/secrets.toml), then the allowlist decides (pulse/access.py).
See docs/security.md."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from pulse.access import admits, verified_claim


def guard_the_door(allowed: Sequence[str]) -> None:
    """Return if the signed-in account may see the dashboard; otherwise show the sign-in
    button, or the refusal, and stop the script."""
    if not st.user.is_logged_in:
        st.title("Pulse")
        st.button("Log in", on_click=st.login, type="primary")
        st.stop()
    email = st.user.get("email")
    if admits(
        allowed, str(email) if email else None, verified_claim(st.user.get("email_verified"))
    ):
        return
    st.title("Pulse")
    who = f"**{email}**" if email else "This account (it has no e-mail address)"
    st.error(
        f"{who} may not open this dashboard. Ask its operator to add it to "
        "PULSE_DASHBOARD_ALLOWED_USERS.",
        icon=":material/block:",
    )
    st.button("Log out", on_click=st.logout)
    st.stop()
