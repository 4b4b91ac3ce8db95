"""Stage 1: simulate user interactions (pure) and produce them to Kafka at a paced rate."""
