"""A local server speaking the SES v2 API: moto's server, in a thread of this process.

Senders must be verified (``verify``) as in SES's sandbox; an unverified sender gets
``MessageRejected``. What SES accepted is read from moto's backend (``sent_messages``),
which is in this process. ``set_down`` is not possible with moto; ``stop`` it instead.

Standalone: ``python -m tests.support.servers.ses [--port N]`` verifies the sender, prints the
worker environment, one ``NAME=value`` per line, then serves.
"""

from __future__ import annotations

import argparse
import logging
import threading
from typing import Any

import boto3
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.server import ThreadedMotoServer
from moto.ses.models import ses_backends

from tests.support.servers import announce

REGION = "us-east-1"
SENDER = "notifications@notifyhub.test"
# moto accepts any credentials; these only have to be present.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class FakeSes:
    def __init__(self, port: int = 0) -> None:
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.url = ""

    def start(self) -> None:
        # werkzeug logs every request at INFO; tests do not need that noise.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.url = f"http://{host}:{port}"
        self.verify(SENDER)

    def stop(self) -> None:
        self._server.stop()

    def _client(self) -> Any:
        return boto3.client(
            "sesv2",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def verify(self, address: str) -> None:
        """Make ``address`` a verified identity, so SES sends from it."""
        self._client().create_email_identity(EmailIdentity=address)

    def sent_messages(self) -> list[dict[str, Any]]:
        """What SES accepted: ``{"id", "source", "subject", "body" (HTML if any), "destinations"}``."""
        backend = ses_backends[DEFAULT_ACCOUNT_ID][REGION]
        return [dict(vars(message)) for message in backend.sent_messages]

    def env(self) -> dict[str, str]:
        return {
            **CREDENTIALS,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NOTIFYHUB_SES_REGION": REGION,
            "NOTIFYHUB_SES_ENDPOINT_URL": self.url,
            "NOTIFYHUB_EMAIL_FROM": SENDER,
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    server = FakeSes(parser.parse_args().port)
    server.start()
    announce(server.env())
    threading.Event().wait()
