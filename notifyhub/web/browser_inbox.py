"""The browser inbox: ``GET /inbox`` (a page) and ``GET /inbox.js`` (the embeddable script).

Both are static; the script authenticates with the recipient's inbox token only. See the
comment at the top of ``static/inbox.js`` for embedding it in a tenant's site.
"""

from __future__ import annotations

from importlib.resources import files

from aiohttp import web
from faust.web import View

from notifyhub.app import app

_STATIC = files("notifyhub.web") / "static"
PAGE = (_STATIC / "inbox.html").read_text()
SCRIPT = (_STATIC / "inbox.js").read_text()


@app.page("/inbox")
class InboxPageView(View):
    async def get(self, request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")


@app.page("/inbox.js")
class InboxScriptView(View):
    async def get(self, request: web.Request) -> web.Response:
        return web.Response(
            text=SCRIPT,
            content_type="application/javascript",
            headers={"Access-Control-Allow-Origin": "*"},
        )
