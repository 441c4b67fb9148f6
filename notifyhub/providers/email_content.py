"""What an email says, shared by the email providers: subject, text and (when the body is
HTML) an HTML part with a plain-text alternative derived from it."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from notifyhub.messages import Notification
from notifyhub.rendering import is_html

# Elements whose end starts a new line in the text version.
_BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table"})
_INVISIBLE = frozenset({"script", "style", "head", "title"})


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str | None


class _TextOf(HTMLParser):
    """The readable text of an HTML body, keeping link targets: ``label (url)``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _INVISIBLE:
            self._hidden += 1
        elif tag == "a":
            self._links.append(dict(attrs).get("href"))
        elif tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _INVISIBLE:
            self._hidden = max(0, self._hidden - 1)
        elif tag == "a" and self._links:
            href = self._links.pop()
            if href and not href.startswith("#"):
                self.parts.append(f" ({href})")
        elif tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def text_of(html: str) -> str:
    parser = _TextOf()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
    return "\n".join(line for line in lines if line)


def email_content(notification: Notification) -> EmailContent:
    body = notification.body or ""
    subject = notification.subject or ""
    if is_html(body):
        return EmailContent(subject=subject, text=text_of(body), html=body)
    return EmailContent(subject=subject, text=body, html=None)
