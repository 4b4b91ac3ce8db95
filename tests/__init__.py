"""Pulse test suite: unit/ for pure logic, integration/ against the real local stack."""
