"""The pipeline-lag metric, shown on the overview and the health page."""

from __future__ import annotations

import streamlit as st
from confluent_kafka import KafkaException
from pymongo.database import Database
from streamlit.delta_generator import DeltaGenerator

from pulse.kafka.lag import LagReader, PipelineLag
from pulse.store import reads
from pulse.store.client import Document
from streamlit_app.connection import fetch, settings

HELP = (
    "How far the counted figures trail what Kafka holds: the age of the oldest record not "
    "counted yet (0 s when all are counted), and how many records wait. It stays small while "
    "the pipeline keeps up, whether or not anyone is producing."
)


@st.cache_resource(show_spinner=False)
def _reader(bootstrap_servers: str) -> LagReader:
    # One reader for every page and session (the servers are the cache key only).
    return LagReader(settings().kafka)


def _lag(db: Database[Document], topic: str) -> PipelineLag:
    stored = reads.stored_offsets(db, topic)
    return _reader(settings().kafka.bootstrap_servers).lag(stored, topic)


def lag_metric(place: DeltaGenerator, warn: bool = False) -> PipelineLag | None:
    """Show 'Pipeline lag' in `place`; None (and 'n/a') when Kafka does not answer."""
    current = settings()
    try:
        lag = fetch(_lag, current.kafka.topic)
    except KafkaException as exc:
        if warn:
            st.warning(f"Kafka is unreachable: {exc.args[0].str()}")
        place.metric("Pipeline lag", "n/a", help=HELP)
        return None
    place.metric(
        "Pipeline lag",
        f"{lag.seconds:,.1f} s",
        delta=f"{lag.records:,} records waiting",
        delta_color="off",
        help=HELP,
    )
    return lag
