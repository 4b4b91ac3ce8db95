"""Pulse dashboard: `streamlit run streamlit_app/app.py` (started by `make run`).

Pages only lay out; data comes from pulse/store/reads.py, figures from charts.py.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from streamlit_app.access import guard_the_door
from streamlit_app.connection import settings
from streamlit_app.controls import sidebar

VIEWS = Path(__file__).parent / "views"

st.set_page_config(page_title="Pulse", page_icon=":material/monitoring:", layout="wide")
if settings().dashboard.require_login:
    guard_the_door(settings().dashboard.allowed_users)  # stops here unless admitted
page = st.navigation(
    [
        st.Page(
            VIEWS / "overview.py", title="Overview", icon=":material/monitoring:", default=True
        ),
        st.Page(VIEWS / "items.py", title="Items", icon=":material/inventory_2:"),
        st.Page(VIEWS / "users.py", title="Users", icon=":material/group:"),
        st.Page(VIEWS / "funnel.py", title="Funnel", icon=":material/filter_alt:"),
        st.Page(VIEWS / "sessions.py", title="Sessions", icon=":material/timelapse:"),
        st.Page(VIEWS / "alerts.py", title="Alerts", icon=":material/notifications:"),
        st.Page(VIEWS / "health.py", title="Pipeline health", icon=":material/health_and_safety:"),
    ]
)
sidebar()  # here, not in each page, so the choices survive page changes
page.run()
