"""Rendering tenant templates and the starter templates (pure logic)."""

from __future__ import annotations

import pytest

from notifyhub.content.rendering import (
    Rendered,
    RenderError,
    StarterTemplate,
    check_syntax,
    is_html,
    render,
    starter_templates,
)
from notifyhub.model.channels import Channel

HTML_BODY = "<p>Hello {{ name }}</p>"
TEXT_BODY = "Hello {{ name }}"

# The variables notifyhub/templates/README.md documents for each starter template:
# (required, optional). Rendering with them must succeed; dropping a required one must fail.
DOCUMENTED_VARIABLES: dict[tuple[Channel, str], tuple[dict[str, str], dict[str, str]]] = {
    (Channel.EMAIL, "welcome"): ({"name": "Ada"}, {"app_name": "Acme"}),
    (Channel.EMAIL, "password_reset"): (
        {"reset_url": "https://acme.test/reset/1"},
        {"app_name": "Acme"},
    ),
    (Channel.EMAIL, "alert"): ({"title": "Disk full", "message": "Volume /data is 99% full"}, {}),
    (Channel.SMS, "otp"): ({"code": "482913"}, {"app_name": "Acme"}),
    (Channel.SMS, "alert"): ({"title": "Disk full", "message": "Volume /data is 99% full"}, {}),
    (Channel.PUSH, "default"): ({"title": "New message", "body": "Bob wrote to you"}, {}),
    (Channel.INAPP, "default"): ({"title": "New message", "body": "Bob wrote to you"}, {}),
}


def starter(channel: Channel, name: str) -> StarterTemplate:
    return next(t for t in starter_templates() if (t.channel, t.name) == (channel, name))


def test_payload_values_fill_the_subject_and_body() -> None:
    rendered = render(
        Channel.EMAIL, "Hi {{ name }}", "Your code is {{ code }}", {"name": "Ada", "code": 42}
    )
    assert rendered == Rendered(subject="Hi Ada", body="Your code is 42")


def test_no_subject_template_renders_no_subject() -> None:
    assert render(Channel.SMS, None, TEXT_BODY, {"name": "Ada"}) == Rendered(
        subject=None, body="Hello Ada"
    )


def test_an_undefined_body_variable_is_an_error_naming_it() -> None:
    with pytest.raises(RenderError) as caught:
        render(Channel.SMS, None, TEXT_BODY, {})
    assert str(caught.value) == "body: 'name' is undefined"


def test_an_undefined_subject_variable_is_an_error_naming_the_subject() -> None:
    with pytest.raises(RenderError, match=r"^subject: 'title' is undefined$"):
        render(Channel.PUSH, "{{ title }}", "ok", {})


def test_an_html_email_body_escapes_payload_values() -> None:
    assert render(Channel.EMAIL, None, HTML_BODY, {"name": "<b>"}).body == "<p>Hello &lt;b&gt;</p>"


@pytest.mark.parametrize(
    ("channel", "body_template"),
    [
        (Channel.EMAIL, TEXT_BODY),
        (Channel.SMS, TEXT_BODY),
        (Channel.PUSH, TEXT_BODY),
        (Channel.INAPP, TEXT_BODY),
        # Only email bodies are HTML, whatever their text looks like.
        (Channel.SMS, HTML_BODY),
    ],
)
def test_other_bodies_are_not_escaped(channel: Channel, body_template: str) -> None:
    assert "Hello <b>" in render(channel, None, body_template, {"name": "<b>"}).body


def test_a_subject_is_never_escaped_even_with_an_html_body() -> None:
    rendered = render(Channel.EMAIL, "Hi {{ name }}", HTML_BODY, {"name": "Tom & <Jerry>"})
    assert rendered.subject == "Hi Tom & <Jerry>"
    assert rendered.body == "<p>Hello Tom &amp; &lt;Jerry&gt;</p>"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("<p>hi</p>", True),
        ("line<br/>break", True),
        ('<a href="{{ url }}">go</a>', True),
        ("<!DOCTYPE html>", True),
        ("Hello {{ name }}", False),
        ("a < b and c > d", False),
        ("<5 seats left>", False),
    ],
)
def test_a_body_is_html_when_it_contains_a_tag(source: str, expected: bool) -> None:
    assert is_html(source) is expected


@pytest.mark.parametrize(
    "body_template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ payload.__init__.__globals__ }}",
        # The immutable sandbox: a template cannot change the caller's payload.
        "{{ tags.append('x') }}",
    ],
)
def test_the_sandbox_refuses_unsafe_access(body_template: str) -> None:
    payload = {"payload": {}, "tags": ["a"]}
    with pytest.raises(RenderError, match=r"^body: not allowed in a template: access to attribute"):
        render(Channel.SMS, None, body_template, payload)
    assert payload["tags"] == ["a"]


def test_a_python_error_inside_a_template_is_a_render_error() -> None:
    with pytest.raises(RenderError, match=r"^body: ZeroDivisionError: division by zero$"):
        render(Channel.SMS, None, "{{ 1 / zero }}", {"zero": 0})


def test_a_syntax_error_at_render_time_names_the_part_and_line() -> None:
    with pytest.raises(RenderError) as caught:
        render(Channel.EMAIL, "{{ name }", "ok", {"name": "Ada"})
    assert str(caught.value) == "subject: syntax error at line 1: unexpected '}'"


def test_check_syntax_accepts_valid_templates() -> None:
    check_syntax("Hi {{ name }}", HTML_BODY)
    check_syntax(None, TEXT_BODY)


@pytest.mark.parametrize(
    ("subject_template", "body_template", "message"),
    [
        ("{{ name }", "ok", "subject_template: syntax error at line 1: unexpected '}'"),
        (None, "line one\n{% if %}", "body_template: syntax error at line 2: Expected an expression"),
        ("ok", "{{ name | no_such_filter }}", "body_template: syntax error at line 1: No filter named"),
    ],
)
def test_check_syntax_names_the_field_at_fault(
    subject_template: str | None, body_template: str, message: str
) -> None:
    with pytest.raises(RenderError) as caught:
        check_syntax(subject_template, body_template)
    assert str(caught.value).startswith(message)


def test_check_syntax_does_not_need_the_variables() -> None:
    check_syntax("{{ undefined_here }}", "{{ also_undefined }}")


def test_all_seven_starter_templates_are_shipped_sorted_by_channel_and_name() -> None:
    found = [(t.channel, t.name) for t in starter_templates()]
    assert found == sorted(DOCUMENTED_VARIABLES)
    assert len(found) == 7


@pytest.mark.parametrize(("channel", "name"), sorted(DOCUMENTED_VARIABLES))
def test_a_starter_template_renders_with_its_documented_variables(channel: Channel, name: str) -> None:
    template = starter(channel, name)
    required, optional = DOCUMENTED_VARIABLES[channel, name]
    check_syntax(template.subject_template, template.body_template)
    assert template.metadata["description"]

    rendered = render(
        template.channel, template.subject_template, template.body_template, required | optional
    )
    for value in (required | optional).values():
        assert value in (rendered.subject or "") + rendered.body
    assert (rendered.subject is None) is (channel is Channel.SMS)

    for missing in required:
        without = {key: value for key, value in required.items() if key != missing}
        with pytest.raises(RenderError, match=f"'{missing}' is undefined"):
            render(template.channel, template.subject_template, template.body_template, without)


@pytest.mark.parametrize(("channel", "name"), [(Channel.EMAIL, "welcome"), (Channel.SMS, "otp")])
def test_app_name_defaults_to_notifyhub(channel: Channel, name: str) -> None:
    template = starter(channel, name)
    required, _ = DOCUMENTED_VARIABLES[channel, name]
    rendered = render(channel, template.subject_template, template.body_template, required)
    assert "NotifyHub" in (rendered.subject or "") + rendered.body


def test_starter_email_bodies_are_html_and_escape_values() -> None:
    for template in starter_templates():
        if template.channel is Channel.EMAIL:
            assert is_html(template.body_template), template.name
    alert = starter(Channel.EMAIL, "alert")
    rendered = render(
        Channel.EMAIL, alert.subject_template, alert.body_template, {"title": "<x>", "message": "m"}
    )
    assert rendered.subject == "<x>"
    assert "<h1>&lt;x&gt;</h1>" in rendered.body
