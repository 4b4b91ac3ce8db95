"""Prefect `@task` functions: thin wrappers over the `pulse` package.

Tasks take ids, numbers and parameter models, never live clients or frames (Prefect hashes
and shows task inputs); they build their clients from the settings or find the ones their
flow run opened by id (pulse/pipeline/run_registry.py). Retries are declared on I/O tasks only.
"""
