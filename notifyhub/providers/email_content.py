"""What an email says, shared by the email providers: subject, text and (when the body is
HTML) an HTML part with a plain-text alternative derived from it.

Whether a body is HTML is rendering's decision, made from the template (see
``notifyhub.content.rendering.Rendered.html``); only a body sent without a template is judged by
looking for tags in it. The text version is read in one pass over the HTML: Python's
``html.parser`` rescans the rest of the text from every unclosed ``<a`` or ``<!--`` (9 s on
64 KB), and an HTML body is tenant input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import unescape

from notifyhub.content.rendering import COMMENT_END, COMMENT_START, is_html
from notifyhub.model.messages import Notification

# Elements that start and end a line in the text version.
_BLOCKS = frozenset({"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table"})
_INVISIBLE = frozenset({"head", "title"})
# Elements whose content is not HTML (``if (a<b)``): skipped whole, up to their end tag.
_RAW_TEXT_END = {name: re.compile(rf"</{name}\s*>", re.IGNORECASE) for name in ("script", "style")}
# A tag's name at the start of what follows ``<``; the tag ends at the next ``>``.
_TAG_NAME = re.compile(r"(/?)([a-zA-Z][a-zA-Z0-9-]*)")
_HREF = re.compile(r"""\bhref\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""", re.IGNORECASE)


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str | None


def text_of(html: str) -> str:
    """The readable text of an HTML body, keeping link targets: ``label (url)``.

    Like a browser, an unclosed comment or tag hides the rest of the body.
    """
    parts: list[str] = []
    links: list[str | None] = []
    hidden = 0
    position = 0
    while position < len(html):
        start = html.find("<", position)
        if start == -1:
            start = len(html)
        if not hidden:
            parts.append(unescape(html[position:start]))
        if start == len(html):
            break
        if html.startswith(COMMENT_START, start):
            end = html.find(COMMENT_END, start + len(COMMENT_START))
            if end == -1:
                break
            position = end + len(COMMENT_END)
            continue
        name = _TAG_NAME.match(html, start + 1)
        if name is None and not html.startswith(("<!", "<?"), start):
            if not hidden:
                parts.append("<")
            position = start + 1
            continue
        end = html.find(">", start)
        if end == -1:
            break
        position = end + 1
        if name is None:
            continue  # a doctype or processing instruction
        closing, tag = name.group(1) == "/", name.group(2).lower()
        if tag in _RAW_TEXT_END and not closing:
            raw_end = _RAW_TEXT_END[tag].search(html, position)
            if raw_end is None:
                break
            position = raw_end.end()
        elif tag in _INVISIBLE:
            hidden = max(0, hidden - 1) if closing else hidden + 1
        elif tag == "a" and not closing:
            href = _HREF.search(html, start, end)
            links.append(unescape(next(filter(None, href.groups()), "")) if href else None)
        elif tag == "a" and links:
            target = links.pop()
            if target and not target.startswith("#"):
                parts.append(f" ({target})")
        elif tag in _BLOCKS:
            parts.append("\n")
    lines = (" ".join(line.split()) for line in "".join(parts).splitlines())
    return "\n".join(line for line in lines if line)


def email_content(notification: Notification) -> EmailContent:
    body = notification.body or ""
    subject = notification.subject or ""
    # A template's kind was decided when it was rendered: never guess again from a body
    # that holds payload values (a plain-text template's "<a href>" stays text).
    if notification.body_html if notification.body_html is not None else is_html(body):
        return EmailContent(subject=subject, text=text_of(body), html=body)
    return EmailContent(subject=subject, text=body, html=None)
