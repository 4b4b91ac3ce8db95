"""Pulse building blocks: settings, schema, generator, aggregation, alerts, Kafka/MongoDB I/O."""
