"""Checking a worker's real answers against the committed OpenAPI document, and the
settings the schemathesis runs share (tests/web/test_openapi.py, tests/hostile)."""

from __future__ import annotations

import json
from importlib import resources as package_files
from typing import Any
from urllib.parse import quote

import aiohttp
import schemathesis
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.support.workers import Worker

DOCUMENT_BYTES = package_files.files("notifyhub.web").joinpath("openapi.json").read_bytes()
DOCUMENT = json.loads(DOCUMENT_BYTES)
# Where the document lives in the registry, so that its "#/components/..." references resolve.
DOCUMENT_URI = "urn:notifyhub:openapi"

FUZZ_REQUEST_TIMEOUT_SECONDS = 15
FUZZ_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
# The fuzzing worker must not throttle the fuzzer (the default is 100 requests a minute per key).
UNTHROTTLED_RATE_LIMIT = "100000"


def _escape(token: str) -> str:
    """A JSON pointer token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


class Contract:
    """Checks a real answer against what the document says that operation answers."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document
        self.registry = Registry().with_resource(
            DOCUMENT_URI, Resource.from_contents(document, default_specification=DRAFT202012)
        )

    def _follow(self, pointer: str) -> tuple[str, dict[str, Any]]:
        """The object at ``pointer``, through an OpenAPI ``$ref`` if it is one, and where it is."""
        node: Any = self.document
        for token in pointer.lstrip("/").split("/"):
            node = node[token.replace("~1", "/").replace("~0", "~")]
        if "$ref" in node:
            return self._follow(node["$ref"].removeprefix("#"))
        return pointer, node

    def check(
        self, method: str, path: str, status: int, headers: Any, body: Any, content_type: str
    ) -> None:
        operation = self.document["paths"][path][method]
        where = f"{method.upper()} {path} → {status}"
        assert str(status) in operation["responses"], f"{where} is not documented: {body}"
        pointer, response = self._follow(f"/paths/{_escape(path)}/{method}/responses/{status}")
        for name, header_ref in response.get("headers", {}).items():
            header = self._follow(header_ref["$ref"].removeprefix("#"))[1]
            if header.get("required"):
                assert name in headers, f"{where} lacks its {name} header"
        if "content" not in response:
            assert body is None, f"{where} is documented without a body, but has {body}"
            return
        assert content_type in response["content"], f"{where} answered {content_type}"
        schema_pointer = f"{pointer}/content/{_escape(content_type)}/schema"
        validator = Draft202012Validator(
            {"$ref": f"{DOCUMENT_URI}#{schema_pointer}"},
            registry=self.registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER,
        )
        problem = best_match(validator.iter_errors(body))
        assert problem is None, f"{where} does not match its schema: {problem}\n{body}"


class Api:
    """Requests by documented path; every answer is checked against the document."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.base_url = base_url
        self.headers = headers
        self.contract = Contract(DOCUMENT)

    async def __call__(
        self,
        method: str,
        path: str,
        expect: int,
        path_params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> Any:
        url = self.base_url + path.format_map(
            {name: quote(str(value), safe="") for name, value in (path_params or {}).items()}
        )
        all_headers = self.headers if headers is None else headers
        async with self.http.request(method, url, headers=all_headers, **kwargs) as response:
            raw = await response.read()
            body = json.loads(raw) if raw else None
            self.contract.check(
                method.lower(), path, response.status, response.headers, body, response.content_type
            )
        assert response.status == expect, f"{method} {url}: {response.status} {body}"
        return body


def server_traceback(worker: Worker, response: schemathesis.Response) -> str:
    """Where the worker's log says the request behind ``response`` failed: the last frame in
    NotifyHub's code and the exception (the log entry is found by the request id)."""
    try:
        marker = f"(request {response.json()['meta']['request_id']})"
    except (ValueError, KeyError, TypeError):
        return ""
    lines = worker.log_path.read_text(errors="replace").splitlines()
    start = next((i for i, line in enumerate(lines) if marker in line), None)
    if start is None:
        return ""
    # A log record starts with "[<timestamp>]"; the lines up to the next one are its traceback.
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("[")), len(lines))
    entry = lines[start:end]
    frames = [i for i, line in enumerate(entry) if line.lstrip().startswith('File "')]
    ours = [i for i in frames if "/notifyhub/" in entry[i] and "/site-packages/" not in entry[i]]
    where = entry[ours[-1] : ours[-1] + 2] if ours else []
    exception = [line for line in entry[frames[-1] + 1 :] if not line[:1].isspace()] if frames else []
    return "\n".join(["", "worker log:", entry[0], *where, *exception])
