"""Benchmarks: `make bench` (stats endpoint) and `make bench-seed` (bulk seeding)."""
