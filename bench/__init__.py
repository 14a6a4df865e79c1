"""Benchmarks against a local service (127.0.0.1 only): latency, replay, index."""
