"""Prefect deployments of the flows: serve.py for local serving, prefect.yaml for work pools."""
