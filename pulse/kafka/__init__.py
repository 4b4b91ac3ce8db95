"""Kafka at the edges: clients built from the settings, the producer, topic helpers."""
