"""A local SMTP server (aiosmtpd) that records what it receives, for tests and benchmarks.

Recipients at ``@rejected.test`` are refused with 550; ``fail_next`` answers the next
transactions with a 4xx at RCPT; ``set_down`` answers every transaction with 421.
It runs in its own thread (aiosmtpd's ``Controller``), so it serves whatever the test's
event loop is doing.

Standalone: ``python -m tests.support.servers.smtp [--port N]`` prints the worker environment,
one ``NAME=value`` per line, then serves.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import socket
import threading
import time
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.servers import announce

REJECTED_DOMAIN = "@rejected.test"
SENDER = "notifications@notifyhub.test"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class _Recorder:
    """aiosmtpd handler: decides each recipient, records each message."""

    def __init__(self, server: FakeSmtp) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        answer = self._server.answer_for(address)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        html = parsed.get_body(("html",))
        text = parsed.get_body(("plain",))
        self._server.record(
            {
                "from": envelope.mail_from,
                "to": list(envelope.rcpt_tos),
                "subject": parsed["Subject"],
                "message_id": parsed["Message-ID"],
                "list_unsubscribe": parsed["List-Unsubscribe"],
                "list_unsubscribe_post": parsed["List-Unsubscribe-Post"],
                "text": text.get_content() if text is not None else None,
                "html": html.get_content() if html is not None else None,
                "content_type": parsed.get_content_type(),
                "received_at": time.time(),
            }
        )
        return "250 2.0.0 Ok: queued"


class FakeSmtp:
    def __init__(self, port: int = 0) -> None:
        self.host = "127.0.0.1"
        self.port = port or _free_port()
        self.messages: list[dict[str, Any]] = []
        # Every RCPT the server answered, accepted or not: a breaker test counts calls.
        self.transactions = 0
        self._failures: list[int] = []
        self._down = False
        self._lock = threading.Lock()
        self._controller = Controller(_Recorder(self), hostname=self.host, port=self.port)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    def fail_next(self, count: int, code: int = 451) -> None:
        with self._lock:
            self._failures.extend([code] * count)

    def set_down(self, down: bool) -> None:
        self._down = down

    def env(self) -> dict[str, str]:
        return {
            "NOTIFYHUB_SMTP_HOST": self.host,
            "NOTIFYHUB_SMTP_PORT": str(self.port),
            "NOTIFYHUB_SMTP_SECURITY": "none",
            "NOTIFYHUB_EMAIL_FROM": SENDER,
        }

    def answer_for(self, address: str) -> str | None:
        with self._lock:
            self.transactions += 1
            if self._down:
                return "421 4.3.2 Service not available"
            if self._failures:
                return f"{self._failures.pop(0)} 4.3.0 Scripted failure"
        if address.endswith(REJECTED_DOMAIN):
            return "550 5.1.1 No such user here"
        return None

    def record(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.messages.append(message)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    server = FakeSmtp(parser.parse_args().port)
    server.start()
    announce(server.env())
    threading.Event().wait()
