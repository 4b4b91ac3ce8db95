"""Prefect flows: one file per pipeline, orchestration only. A flow composes tasks (tasks/),
which wrap the `pulse` package, where the logic lives; flows/policies.py holds what the flows
share (timeouts, schedule windows, the drain's budget)."""

import logging

# Prefect sends `pulse.*` records to the run logs (PREFECT_LOGGING_EXTRA_LOGGERS) but leaves
# that logger's level unset, so the root's WARNING dropped every INFO line: a handover's
# assign and revoke times, replays, partitions read again. Flow runs show them now.
logging.getLogger("pulse").setLevel(logging.INFO)
