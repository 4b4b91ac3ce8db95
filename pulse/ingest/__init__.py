"""Stage 2: raw records -> valid events and dead letters -> aggregates (all pure)."""
