"""The local services `make up` runs without Docker: Kafka (KRaft), MongoDB or FerretDB, Prefect."""
