"""Local services without Docker: Kafka from Maven jars, MongoDB/FerretDB, Prefect server."""
