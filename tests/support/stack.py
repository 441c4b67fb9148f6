"""Where the test suite gets its real services, in this order:

1. addresses from the environment (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, REDIS_URL, all three);
2. testcontainers, when a Docker engine answers;
3. the native stack (deployments/local/stack.sh) on free loopback ports in a fresh directory.

When ``CI`` is set, a service that cannot be had fails the run; it is never skipped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STACK_SCRIPT = REPO / "deployments" / "local" / "stack.sh"
# Generous: on a fresh machine `up` installs PostgreSQL/Redis and resolves Kafka's jars.
STACK_UP_TIMEOUT_SECONDS = 900


@dataclass(frozen=True)
class Services:
    kafka_bootstrap_servers: str
    database_url: str
    redis_url: str
    origin: str  # "environment", "testcontainers" or "native"

    def environ(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap_servers,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
        }


class ServicesUnavailable(RuntimeError):
    """No way to get a real Kafka, PostgreSQL and Redis worked; the message says why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def from_environment() -> Services | None:
    """The services the environment names (all three addresses), or None."""
    names = ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "REDIS_URL")
    if not all(os.environ.get(name) for name in names):
        return None
    kafka, database, redis_url = (os.environ[name] for name in names)
    return Services(kafka, database, redis_url, origin="environment")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@contextlib.contextmanager
def _testcontainers() -> Iterator[Services]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer
    from testcontainers.redis import RedisContainer

    kafka = (
        KafkaContainer("confluentinc/cp-kafka:7.9.0")
        .with_kraft()
        .with_env("KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS", "0")
    )
    postgres = PostgresContainer("postgres:16", driver=None)
    redis = RedisContainer("redis:7")
    with kafka, postgres, redis:
        yield Services(
            kafka.get_bootstrap_server(),
            postgres.get_connection_url(),
            f"redis://{redis.get_container_host_ip()}:{redis.get_exposed_port(6379)}/0",
            origin="testcontainers",
        )


# A service stopped by a fault test is back within this long, or the test fails.
SERVICE_START_TIMEOUT_SECONDS = 120


class NativeStack:
    """A native stack of its own (fresh directory, free loopback ports) whose services can
    be stopped and started one at a time (``stack.sh stop|start SERVICE``)."""

    def __init__(self, redis_persistent: bool = False) -> None:
        # The postgres user must be able to reach its data directory, so not 0700.
        self.directory = Path(tempfile.mkdtemp(prefix="notifyhub-stack-"))
        self.directory.chmod(0o755)
        self._env = {
            **os.environ,
            "NOTIFYHUB_STACK_DIR": str(self.directory),
            "NOTIFYHUB_KAFKA_PORT": str(free_port()),
            "NOTIFYHUB_KAFKA_CONTROLLER_PORT": str(free_port()),
            "NOTIFYHUB_PG_PORT": str(free_port()),
            "NOTIFYHUB_REDIS_PORT": str(free_port()),
            "NOTIFYHUB_REDIS_APPENDONLY": "yes" if redis_persistent else "no",
        }

    def _stack(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(STACK_SCRIPT), *args], env=self._env, capture_output=True, text=True, timeout=timeout
        )

    def up(self) -> Services:
        up = self._stack("up", timeout=STACK_UP_TIMEOUT_SECONDS)
        if up.returncode != 0:
            raise ServicesUnavailable(f"native stack did not start:\n{up.stderr[-3000:]}")
        printed = self._stack("env", timeout=30).stdout
        addresses = dict(line.split("=", 1) for line in printed.split())
        return Services(
            addresses["KAFKA_BOOTSTRAP_SERVERS"],
            addresses["DATABASE_URL"],
            addresses["REDIS_URL"],
            origin="native",
        )

    def stop(self, service: str) -> None:
        done = self._stack("stop", service, timeout=SERVICE_START_TIMEOUT_SECONDS)
        assert done.returncode == 0, f"stopping {service} failed:\n{done.stderr[-2000:]}"

    def start(self, service: str) -> None:
        done = self._stack("start", service, timeout=SERVICE_START_TIMEOUT_SECONDS)
        assert done.returncode == 0, f"starting {service} failed:\n{done.stderr[-2000:]}"

    def down(self) -> None:
        """Stop the services at once and delete their data (nothing is kept to shut down for)."""
        self._stack("discard", timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def native_stack(redis_persistent: bool = False) -> Iterator[tuple[NativeStack, Services]]:
    """A stack of its own for the duration of the block (``redis_persistent``: Redis keeps
    its data across a restart)."""
    stack = NativeStack(redis_persistent)
    try:
        yield stack, stack.up()
    finally:
        stack.down()


@contextlib.contextmanager
def real_services() -> Iterator[Services]:
    """The services for one test session, started (and stopped) here when needed."""
    given = from_environment()
    if given is not None:
        yield given
    elif _docker_answers():
        with _testcontainers() as services:
            yield services
    elif STACK_SCRIPT.exists():
        with native_stack() as (_, services):
            yield services
    else:
        raise ServicesUnavailable("no service addresses, no Docker engine and no native stack")
