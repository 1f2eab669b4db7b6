"""Shared infrastructure: request log, limits, throttling, Redis and database plumbing; no app."""
