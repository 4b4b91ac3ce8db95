"""The Streamlit dashboard: read-only views of the aggregates in MongoDB."""
