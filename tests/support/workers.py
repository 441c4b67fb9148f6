"""Workers as real processes: ``notifyhub worker``, each of a deployment of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from notifyhub.providers.sink import sink_key
from tests.support.moved_clock import OFFSET_FILE_VARIABLE
from tests.support.stack import REPO, Services, free_port

# A worker is ready when its web server answers; Faust starts it after table recovery.
WORKER_READY_TIMEOUT_SECONDS = 90
WORKER_STOP_TIMEOUT_SECONDS = 30
# One set of secrets for every test worker, random as in production (a worker refuses the
# shipped defaults): workers of one deployment forward admin requests to each other and
# check each other's inbox tokens, so they must agree on them.
SESSION_SECRETS = {
    "NOTIFYHUB_ADMIN_TOKEN": f"admin-{uuid.uuid4().hex}",
    "NOTIFYHUB_WS_TOKEN_SECRET": f"ws-token-{uuid.uuid4().hex}",
    "NOTIFYHUB_WEBHOOK_SECRET_KEY": f"webhook-key-{uuid.uuid4().hex}",
}


@dataclass
class Worker:
    """A ``notifyhub worker`` process of its own deployment (app id and topic prefix)."""

    process: subprocess.Popen[bytes]
    base_url: str
    topic_prefix: str
    log_path: Path
    admin_token: str
    env: dict[str, str]
    workdir: Path

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"X-Admin-Token": self.admin_token}

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}.{name}"

    @property
    def sink_key(self) -> str:
        return sink_key(self.topic_prefix)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(WORKER_STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when the machine dies."""
        self.process.kill()
        self.process.wait()

    def restart(self) -> None:
        """Start the process again, with its data directory and port, and wait until ready."""
        assert self.process.poll() is not None, "stop or kill the worker first"
        self.process = _spawn(self.env, self.workdir, self.log_path)
        _wait_until_ready(self)


def _spawn(env: dict[str, str], workdir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    # A worker on a clock the test moves starts through the test's launcher, which gives
    # it that clock; the tests package is found from the repository root.
    if OFFSET_FILE_VARIABLE in env:
        command = "tests.support.moved_clock"
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))}
    else:
        command = "notifyhub.cli.main"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", command, "worker"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=workdir,
        )


def start_worker(
    services: Services,
    workdir: Path,
    deployment: str,
    started: Callable[[Worker], None],
    **settings: str,
) -> Worker:
    """A worker of ``deployment`` on the services, with its own port and data under
    ``workdir``; handed to ``started`` before it is ready, so a failed start is still
    stopped."""
    port = free_port()
    env = {
        **os.environ,
        **services.environ(),
        "NOTIFYHUB_APP_ID": deployment,
        "NOTIFYHUB_TOPIC_PREFIX": deployment,
        "NOTIFYHUB_WEB_PORT": str(port),
        "NOTIFYHUB_DATA_DIR": str(workdir / "data"),
        "NOTIFYHUB_SINK_CHANNELS": "all",
        "NOTIFYHUB_TOPIC_PARTITIONS": "2",
        "NOTIFYHUB_TABLE_STANDBY_REPLICAS": "0",
        "NOTIFYHUB_BROKER_SESSION_TIMEOUT": "10",
        # Tests poll the API; the rate limit has its own tests with their own worker.
        "NOTIFYHUB_API_RATE_LIMIT": "1000000",
        **settings,
    }
    for name, value in SESSION_SECRETS.items():
        env.setdefault(name, value)
    log_path = workdir / "worker.log"
    worker = Worker(
        _spawn(env, workdir, log_path),
        f"http://127.0.0.1:{port}",
        deployment,
        log_path,
        env["NOTIFYHUB_ADMIN_TOKEN"],
        env,
        workdir,
    )
    started(worker)
    _wait_until_ready(worker)
    return worker


def _wait_until_ready(worker: Worker) -> None:
    deadline = time.monotonic() + WORKER_READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited during start-up:\n{worker.log_tail()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{worker.base_url}/readyz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"worker not ready in {WORKER_READY_TIMEOUT_SECONDS}s:\n{worker.log_tail()}")


class WorkerPool:
    """The session's workers: each call starts one (a new deployment unless ``deployment``
    names an earlier one). A worker lives until the end of the test module that started it,
    unless it is ``kept`` for the whole session: an idle Faust worker still ticks and polls,
    and a session's worth of them would share the machine's two cores with every test."""

    def __init__(self, services: Services, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._services = services
        self._tmp_path_factory = tmp_path_factory
        self._started: list[Worker] = []
        self._kept: list[Worker] = []

    def __call__(self, deployment: str | None = None, **settings: str) -> Worker:
        name = deployment or f"test-{uuid.uuid4().hex[:10]}"
        return start_worker(
            self._services, self._tmp_path_factory.mktemp(name), name, self._started.append, **settings
        )

    def keep(self, worker: Worker) -> Worker:
        """Keep ``worker`` running until the session ends."""
        self._kept.append(worker)
        return worker

    def mark(self) -> int:
        return len(self._started)

    def stop_since(self, mark: int) -> None:
        """Stop the workers started since ``mark`` that are not kept."""
        for worker in self._started[mark:]:
            if worker not in self._kept:
                worker.stop()

    def stop_all(self) -> None:
        for worker in self._started:
            worker.stop()
