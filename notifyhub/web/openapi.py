"""``/openapi.json``: the OpenAPI 3.1 description of this HTTP API, unauthenticated.

The document is ``openapi.json`` beside this module, maintained by hand with the routes
(``tests/web/test_openapi.py`` checks it against the routes and against real answers).
"""

from __future__ import annotations

from importlib import resources as package_files

from aiohttp import web
from faust.web import View

from notifyhub.app import app

# Read once: the document is package data and never changes while the worker runs.
OPENAPI_DOCUMENT = package_files.files("notifyhub.web").joinpath("openapi.json").read_bytes()


@app.page("/openapi.json")
class OpenApiView(View):
    async def get(self, request: web.Request) -> web.Response:
        return web.Response(body=OPENAPI_DOCUMENT, content_type="application/json")
