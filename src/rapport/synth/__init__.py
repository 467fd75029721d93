"""Deterministic synthetic workspaces for the demo, tests and benchmarks."""
