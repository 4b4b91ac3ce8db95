"""Pulse: real-time user-interaction analytics, one sub-package per pipeline stage.

See docs/architecture.md for the map.
"""
