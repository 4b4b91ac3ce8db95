"""One user or item looked up by id: its figures as cards, or why there are none."""

from __future__ import annotations

from typing import Any

import streamlit as st

from pulse.events import ID_PATTERN, is_id
from pulse.store import reads
from streamlit_app.connection import fetch


def entity_card(entity: str, key: str, noun: str, lookup: str) -> dict[str, Any] | None:
    """Show the `noun` ('user', 'item') with id `lookup`: its total and when it was first and
    last seen; returns its flattened figures, or None after saying why there are none."""
    found = fetch(reads.entity, entity, key, lookup)
    if found is None:
        st.warning(
            f"No {noun} {lookup!r}."
            if is_id(lookup)
            else f"{lookup!r} is not an id: ids are {ID_PATTERN.strip('^$')}."
        )
        return None
    st.subheader(f"{noun.capitalize()} {lookup}")
    cards = st.columns(3)
    cards[0].metric("Interactions", f"{found['total']:,}", help="Since the start; exact.")
    cards[1].metric("First seen", f"{found['first_seen']:%Y-%m-%d %H:%M:%S}")
    cards[2].metric("Last seen", f"{found['last_seen']:%Y-%m-%d %H:%M:%S}")
    return found
