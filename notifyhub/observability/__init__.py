"""Metrics, traces, structured logs and consumer lag."""
