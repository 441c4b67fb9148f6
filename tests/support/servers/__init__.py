"""Local servers speaking the providers' real protocols (SES v2, SMTP, Twilio, FCM HTTP v1),
for the tests and, run standalone (``python -m tests.support.servers.<name>``), the benchmarks."""

from __future__ import annotations


def announce(env: dict[str, str]) -> None:
    """Print the settings that point a worker at a standalone server: ``NAME=value`` lines,
    then a blank line (what ``bench/topology.py`` reads)."""
    for name, value in env.items():
        print(f"{name}={value}", flush=True)
    print(flush=True)
