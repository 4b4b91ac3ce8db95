"""Prefect flows: one file per pipeline, orchestration only (logic lives in tasks/)."""
