"""Pulse dashboard: `streamlit run streamlit_app/app.py` (started by `make run`).

Pages only lay out; data comes from pulse/store/reads.py, figures from charts.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from streamlit_app.connection import settings
from streamlit_app.controls import sidebar

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Pulse", page_icon=":material/monitoring:", layout="wide")
if settings().dashboard.require_login and not st.user.is_logged_in:
    # OpenID Connect login (PULSE_DASHBOARD_REQUIRE_LOGIN); see docs/security.md.
    st.title("Pulse")
    st.button("Log in", on_click=st.login, type="primary")
    st.stop()
page = st.navigation(
    [
        st.Page(
            VIEWS / "overview.py", title="Overview", icon=":material/monitoring:", default=True
        ),
        st.Page(VIEWS / "items.py", title="Items", icon=":material/inventory_2:"),
        st.Page(VIEWS / "users.py", title="Users", icon=":material/group:"),
        st.Page(VIEWS / "alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page(VIEWS / "health.py", title="Pipeline health", icon=":material/health_and_safety:"),
    ]
)
sidebar()  # here, not in each page, so the choices survive page changes
page.run()
