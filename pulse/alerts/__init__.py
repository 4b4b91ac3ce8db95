"""Alerts: rules, evaluation (pure), the engine that stores state, and notification channels."""
