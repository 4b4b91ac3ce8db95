"""The Prometheus endpoint: what Pulse exposes for scraping (docs/operations.md)."""
