"""Benchmarks: a deterministic data generator and the B1–B8 workloads (see bench/README.md)."""
