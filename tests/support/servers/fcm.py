"""A local server speaking FCM HTTP v1, and the OAuth2 token endpoint in front of it.

- ``POST /token``: Google's service-account grant (``grant_type`` JWT bearer with a
  signed ``assertion``); the assertion's signature is checked with the service account's
  public key, and an access token is issued.
- ``POST /v1/projects/{project}/messages:send`` with ``Authorization: Bearer <token>``:
  200 ``{"name": "projects/{project}/messages/<id>"}``, or FCM's error shape
  ``{"error": {"code", "message", "status", "details": [{"@type": …FcmError, "errorCode"}]}}``.
  Tokens starting ``unregistered-`` are 404 UNREGISTERED, ``invalid-`` 400
  INVALID_ARGUMENT, ``mismatch-`` 403 SENDER_ID_MISMATCH; ``fail_next`` and ``set_down``
  script 5xx/429 answers, ``revoke_tokens`` makes the access tokens issued so far 401.
  A ``validate_only`` request is checked and answered but not recorded as sent.

It writes the service account file (a fresh RSA key, ``token_uri`` pointing here).
Standalone: ``python -m tests.support.servers.fcm [--port N]`` prints the worker environment,
one ``NAME=value`` per line, then serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.servers import announce, serve

FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
# google-auth addresses every service-account assertion to Google's token endpoint, whatever
# the file's token_uri, and Google checks it: so does this server (nothing is sent there).
ASSERTION_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPES = {
    "https://www.googleapis.com/auth/firebase.messaging",
    "https://www.googleapis.com/auth/cloud-platform",
}
# Token prefix → (HTTP status, RPC status, FCM error code)
TOKEN_ERRORS = {
    "unregistered-": (404, "NOT_FOUND", "UNREGISTERED"),
    "invalid-": (400, "INVALID_ARGUMENT", "INVALID_ARGUMENT"),
    "mismatch-": (403, "PERMISSION_DENIED", "SENDER_ID_MISMATCH"),
}
SCRIPTED = {
    429: ("RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED"),
    500: ("INTERNAL", "INTERNAL"),
    503: ("UNAVAILABLE", "UNAVAILABLE"),
}


def _error(status: int, rpc_status: str, fcm_code: str | None, message: str) -> web.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": rpc_status}
    if fcm_code is not None:
        error["details"] = [{"@type": FCM_ERROR_TYPE, "errorCode": fcm_code}]
    return web.json_response({"error": error}, status=status)


class FakeFcm:
    """The server; its service account file is written to ``credentials_file`` (by default
    in a temporary directory, removed by ``stop``) when it starts."""

    def __init__(self, credentials_file: Path | None = None, port: int = 0) -> None:
        self.project_id = f"notifyhub-test-{secrets.token_hex(4)}"
        self._temporary_dir: Path | None = None
        if credentials_file is None:
            self._temporary_dir = Path(tempfile.mkdtemp(prefix="fake-fcm-"))
            credentials_file = self._temporary_dir / "service-account.json"
        self.credentials_file = credentials_file
        self.client_email = f"notifyhub@{self.project_id}.iam.gserviceaccount.com"
        self.messages: list[dict[str, Any]] = []
        self.requests = 0
        self.tokens_issued = 0
        self.url = ""
        self._port = port
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._access_tokens: set[str] = set()
        self._failures: list[int] = []
        self._down = False
        self._runner: web.AppRunner | None = None

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next ``count`` authenticated sends with ``status`` (503, 429 or 500)."""
        self._failures.extend([status] * count)

    def set_down(self, down: bool) -> None:
        """While down, every send is 503 UNAVAILABLE."""
        self._down = down

    def revoke_tokens(self) -> None:
        """Make every access token issued so far unknown, as a revoked key would."""
        self._access_tokens.clear()

    def env(self) -> dict[str, str]:
        """The settings that point the fcm provider here."""
        return {
            "NOTIFYHUB_FCM_CREDENTIALS_FILE": str(self.credentials_file),
            "NOTIFYHUB_FCM_PROJECT_ID": self.project_id,
            "NOTIFYHUB_FCM_API_URL": self.url,
        }

    async def start(self) -> None:
        """Listen on 127.0.0.1 (a free port unless one was given), then write the account file."""
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        self._runner, self.url = await serve(app, self._port)
        self._write_service_account()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)

    def _write_service_account(self) -> None:
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        account = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": secrets.token_hex(20),
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "1",
            "token_uri": f"{self.url}/token",
        }
        self.credentials_file.write_text(json.dumps(account))

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        try:
            claims = jwt.decode(
                str(form.get("assertion", "")),
                self._key.public_key(),
                algorithms=["RS256"],
                audience=ASSERTION_AUDIENCE,
                issuer=self.client_email,
                options={"require": ["exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            return web.json_response(
                {"error": "invalid_grant", "error_description": str(exc)}, status=400
            )
        if not FCM_SCOPES & set(str(claims.get("scope", "")).split()):
            return web.json_response(
                {"error": "invalid_scope", "error_description": "no FCM scope"}, status=400
            )
        token = f"ya29.{secrets.token_urlsafe(24)}"
        self._access_tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    async def _send(self, request: web.Request) -> web.Response:
        self.requests += 1
        if self._down:
            return _error(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if bearer not in self._access_tokens:
            return _error(
                401, "UNAUTHENTICATED", None, "Request had invalid authentication credentials."
            )
        if request.match_info["project"] != self.project_id:
            return _error(403, "PERMISSION_DENIED", None, "Permission denied on the project.")
        if self._failures:
            status = self._failures.pop(0)
            rpc_status, fcm_code = SCRIPTED.get(status, ("INTERNAL", "INTERNAL"))
            return _error(status, rpc_status, fcm_code, "Scripted failure")
        body = await request.json()
        message = body.get("message") or {}
        token = str(message.get("token", ""))
        if not token:
            return _error(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The message has no target.")
        for prefix, (status, rpc_status, fcm_code) in TOKEN_ERRORS.items():
            if token.startswith(prefix):
                return _error(
                    status, rpc_status, fcm_code, f"The registration token is not valid ({fcm_code})."
                )
        if body.get("validate_only"):
            return web.json_response({"name": f"projects/{self.project_id}/messages/fake_message_id"})
        name = f"projects/{self.project_id}/messages/{secrets.token_hex(8)}"
        self.messages.append({**message, "name": name, "received_at": time.time()})
        return web.json_response({"name": name})


async def _serve(port: int) -> None:
    server = FakeFcm(port=port)
    await server.start()
    announce(server.env())
    # The benchmark stops it with SIGTERM: stop cleanly, so the key file goes too.
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stopping.set)
    await stopping.wait()
    await server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(_serve(parser.parse_args().port))
