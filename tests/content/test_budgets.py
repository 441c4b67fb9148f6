"""The render budgets: a hostile template fails fast with the budget it broke (no services)."""

from __future__ import annotations

import time

import pytest

from bench.template_budget import HOSTILE, PAYLOAD
from notifyhub.content.rendering import (
    MAX_RENDER_SECONDS,
    MAX_TEMPLATE_CHARS,
    RenderBudgetExceeded,
    RenderError,
    check_syntax,
    is_html,
    render,
)
from notifyhub.model.channels import Channel
from notifyhub.providers.email_content import text_of

# A budget stops a render within its time budget plus one step, which is at most a few ms.
HOLD_BOUND = MAX_RENDER_SECONDS + 0.1

# What each of bench/template_budget.py's hostile templates is stopped by.
BUDGET_NAMED = {
    # Steps or time, whichever runs out first on the machine.
    "loop bomb": "budget",
    "payload loop bomb": "budget",
    "huge range": "range() is over the budget of 10000 items",
    "output size": "the output is over",
    "exponential macros": "budget",
    "endless macro recursion": "calls nest deeper than the budget of 32",
    "recursive loop": "budget",
    "string multiplication": "a repeated value is over the budget",
    "huge power": "1024-bit integers",
    "doubling": "a joined text is over the budget",
    "nested lists": "an output is over the budget",
    "padding filter": "the result of center",
    "padding method": "the result of .ljust()",
    "replace amplifier": "the result of .replace()",
    "format width": "a format width",
    "percent width": "a %-formatted text",
    "indent amplifier": "the result of indent",
    "lorem ipsum": "the result of lipsum",
}


def test_every_hostile_template_is_named_with_its_budget() -> None:
    assert set(BUDGET_NAMED) == set(HOSTILE)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_a_hostile_template_fails_fast_naming_its_budget(name: str) -> None:
    started = time.perf_counter()
    with pytest.raises(RenderBudgetExceeded, match=r"^body: ") as caught:
        render(Channel.EMAIL, None, HOSTILE[name], PAYLOAD)
    assert time.perf_counter() - started < HOLD_BOUND
    assert BUDGET_NAMED[name] in str(caught.value)
    assert isinstance(caught.value, RenderError)


def test_a_subject_over_budget_names_the_subject() -> None:
    with pytest.raises(RenderBudgetExceeded, match=r"^subject: range\(\) is over"):
        render(Channel.PUSH, "{{ range(100000) | list }}", "ok", {})


def test_a_template_over_the_size_budget_is_refused_naming_the_field() -> None:
    too_big = "x" * (MAX_TEMPLATE_CHARS + 1)
    with pytest.raises(RenderBudgetExceeded, match=r"^body_template: .* over the budget of 65536"):
        check_syntax(None, too_big)
    with pytest.raises(RenderBudgetExceeded, match=r"^subject: "):
        render(Channel.SMS, too_big, "ok", {})


def test_a_deeply_nested_template_is_a_syntax_error_not_a_crash() -> None:
    with pytest.raises(RenderError, match=r"^body_template: "):
        check_syntax(None, "{{ " + "(" * 20_000 + "1" + ")" * 20_000 + " }}")


def test_an_ordinary_long_template_stays_within_its_budgets() -> None:
    orders = [{"id": i, "item": f"thing {i}", "price": i * 1.5} for i in range(500)]
    body = (
        "<table>{% for o in orders %}<tr><td>{{ loop.index }}/{{ orders | length }}</td>"
        "<td>{{ o.item | upper }}</td><td>{{ '%.2f' % o.price }}</td></tr>{% endfor %}</table>"
    )
    rendered = render(Channel.EMAIL, "{{ orders | length }} orders", body, {"orders": orders})
    assert rendered.subject == "500 orders" and rendered.html
    assert "<td>THING 499</td><td>748.50</td>" in rendered.body


@pytest.mark.parametrize("unit", ["<!--", "<a", "</", "<![", "<p>"])
def test_html_detection_and_text_extraction_are_linear(unit: str) -> None:
    hostile = unit * (MAX_TEMPLATE_CHARS // len(unit))
    started = time.perf_counter()
    is_html(hostile)
    text_of(hostile)
    assert time.perf_counter() - started < 0.5


def test_a_comment_makes_html_only_when_it_is_closed() -> None:
    assert is_html("hello <!-- note --> there")
    assert not is_html("hello <!-- never closed")


def test_the_text_version_of_html_keeps_text_links_and_lines() -> None:
    html = (
        "<html><head><title>T</title><style>p { }</style></head><body><h1>Hi &amp; bye</h1>"
        '<p>See <a href="https://x.test/?a=1&amp;b=2">the link</a> or <a href="#top">top</a>.'
        "<br/>Line 2: a < b</p><!-- hidden --><script>if (a<b) go()</script><div>last</div>"
    )
    assert text_of(html) == (
        "Hi & bye\nSee the link (https://x.test/?a=1&b=2) or top.\nLine 2: a < b\nlast"
    )


def test_an_unclosed_comment_hides_the_rest_like_a_browser() -> None:
    assert text_of("<p>shown</p><!-- hidden <p>and this</p>") == "shown"


@pytest.mark.parametrize(
    ("body_template", "html"), [("<p>Hi {{ name }}</p>", True), ("Hi {{ name }}", False)]
)
def test_rendering_says_whether_an_email_body_is_html(body_template: str, html: bool) -> None:
    # A plain-text template keeps a payload's markup as text; the flag, not the body's look,
    # says how to send it.
    rendered = render(Channel.EMAIL, None, body_template, {"name": '<a href="https://evil">x</a>'})
    assert rendered.html is html
    assert ('<a href="https://evil">' in rendered.body) is not html
