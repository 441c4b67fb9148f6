"""``/unsubscribe/{token}``: the e-mail unsubscribe link (``notifyhub.receipts.unsubscribe``).

``POST`` (the mailbox provider's one-click button, RFC 8058, or the page's own button)
turns the preference off without a login and answers with a small page. ``GET`` only
shows a page asking to confirm: mail scanners fetch links, and must not unsubscribe
anyone. A forged or altered link is a 403, an expired one a 410, both with a page.
"""

from __future__ import annotations

from html import escape

from aiohttp import web
from faust.web import View

from notifyhub.app import app, publish_all, resources, settings, topics
from notifyhub.receipts import unsubscribe
from notifyhub.services.preferences import Preferences

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32em;margin:4em auto;padding:0 1em}}
button{{font:inherit;padding:.5em 1.2em}}</style></head>
<body><h1>{title}</h1><p>{text}</p>{form}</body></html>
"""

preferences = Preferences(resources, publish_all, topics)


def _page(status: int, title: str, text: str, form: str = "") -> web.Response:
    return web.Response(
        status=status,
        text=PAGE.format(title=escape(title), text=escape(text), form=form),
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _what(wanted: unsubscribe.Unsubscribe) -> str:
    if wanted.category is None:
        return f"all {wanted.channel} notifications"
    return f"{wanted.category} notifications by {wanted.channel}"


def _checked(token: str) -> unsubscribe.Unsubscribe | web.Response:
    try:
        return unsubscribe.verify(settings, token)
    except unsubscribe.InvalidLink as exc:
        if exc.expired:
            return _page(
                410,
                "Link expired",
                "This unsubscribe link has expired. Use the link in a recent message.",
            )
        return _page(403, "Link not valid", "This unsubscribe link is not valid.")


@app.page("/unsubscribe/{token}")
class UnsubscribeView(View):
    async def get(self, request: web.Request, token: str) -> web.Response:
        wanted = _checked(token)
        if isinstance(wanted, web.Response):
            return wanted
        form = '<form method="post"><button type="submit">Unsubscribe</button></form>'
        return _page(200, "Unsubscribe?", f"Stop receiving {_what(wanted)}?", form)

    async def post(self, request: web.Request, token: str) -> web.Response:
        wanted = _checked(token)
        if isinstance(wanted, web.Response):
            return wanted
        await preferences.turn_off(
            wanted.tenant_id, wanted.recipient_id, wanted.channel, wanted.category
        )
        return _page(200, "Unsubscribed", f"You will not receive {_what(wanted)} any more.")
