"""Rendering tenant templates (subject and body) with Jinja2, and the starter templates we ship.

Tenant templates are untrusted, so they run in Jinja2's sandbox with ``StrictUndefined``: a
missing payload variable is an error, never an empty string in a message someone receives.
The payload's keys are the template's variables (``{{ name }}``).

Only an email body that is HTML is autoescaped: SMS, push and in-app texts are shown as plain
text, where ``&lt;`` would be visible noise, and a subject is a header, never HTML.

Rendering runs on the worker's event loop, so one render has budgets (``MAX_*`` below): the
template's size, the steps it takes (loop iterations, calls, lookups, operators), the time,
the size of any value it builds and of its output, and the depth of its macro calls. The
sandbox counts and checks them as it goes (``_BudgetedEnvironment``), so a hostile template
holds the loop for about ``MAX_RENDER_SECONDS`` at most; going over one raises
``RenderBudgetExceeded`` naming the budget.
"""

from __future__ import annotations

import functools
import re
import string
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any, TypeVar, cast

from jinja2 import StrictUndefined, Template, TemplateError, TemplateSyntaxError, nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment

from notifyhub.model.channels import Channel

# One compiled template per (autoescape, source). A worker serves a few hundred tenant
# templates at most, and each renders thousands of times, so compiling once pays; the
# bound keeps memory flat when tenants keep editing templates (each is a few KB of code).
TEMPLATE_CACHE_SIZE = 1024

# The budgets of one template and one render. A template is code a worker compiles and
# keeps; the API refuses a field over MAX_TEMPLATE_CHARS when it is saved.
MAX_TEMPLATE_CHARS = 64 * 1024
# What one part (subject or body) may render to, and the largest text or collection a
# template may build on the way: a payload is at most 64 KB, so this leaves room for the
# template around it while keeping a "double it forty times" template from eating memory.
MAX_RENDERED_CHARS = 256 * 1024
# Loop iterations, calls, attribute and item lookups, operators and outputs of one render
# (subject and body together). A long order confirmation takes a few thousand.
MAX_RENDER_STEPS = 100_000
# CPU time of one render (the thread's, so a busy machine does not fail honest templates):
# the backstop for steps that are each slow but few. It is how long one hostile template
# may hold the event loop (plus the one step that crosses it).
MAX_RENDER_SECONDS = 0.05
# range() in a template: enough for any list in a message; a loop over more is a bug.
MAX_RANGE_ITEMS = 10_000
# Macro calls inside macro calls; real templates nest a handful.
MAX_CALL_DEPTH = 32
# Integers a template computes (``10 ** 100000`` would take seconds to print).
MAX_INT_BITS = 1024

# An email body counts as HTML when its source holds something shaped like a real tag:
# ``<p>``, ``</p>``, ``<br/>``, ``<a href="...">``, ``<!DOCTYPE html>`` or ``<!-- ... -->``.
# A bare ``<`` followed by a space or digit ("a < b", "<5 left") is plain text. Each
# ``[^<>]*`` stops at the next ``<``, so the search is linear; comments are found with
# str.find (``<!--.*?-->`` rescanned the rest of the text from every ``<!--``: 10 s on 64 KB).
HTML_TAG = re.compile(r"<(?:/?[a-zA-Z][a-zA-Z0-9-]*(?:\s[^<>]*)?/?|!doctype\b[^<>]*)>", re.IGNORECASE)
COMMENT_START, COMMENT_END = "<!--", "-->"

# Starter templates live in notifyhub/templates/<channel>/<name>.j2.
STARTER_TEMPLATE_SUFFIX = ".j2"
FRONT_MATTER_FENCE = "---"


class RenderError(Exception):
    """A template could not be rendered (or compiled); str(exc) says which part (subject/body) and why,
    e.g. "body: 'name' is undefined" or "subject: syntax error at line 1: unexpected '}'"."""


class RenderBudgetExceeded(RenderError):
    """A template needed more than one of the render budgets; str(exc) names the part and the
    budget, e.g. "body: over the budget of 100000 steps (loop iterations, calls, lookups)".
    Rendering it again fails the same way: the tenant has to simplify the template."""


@dataclass(frozen=True)
class Rendered:
    """The texts a provider sends; ``subject`` is None when the template has none."""

    subject: str | None
    body: str
    # Whether the body is HTML (an email whose template is HTML, its values escaped). A
    # provider must take this, not look for tags in the body: a plain-text template
    # renders payload values as they are, so a value "<a href=...>" would look like HTML.
    html: bool = False


@dataclass(frozen=True)
class StarterTemplate:
    """A template shipped with NotifyHub that a tenant can start from."""

    name: str
    channel: Channel
    subject_template: str | None
    body_template: str
    metadata: dict[str, Any]


def is_html(body_template: str) -> bool:
    """Whether a body template is HTML, judged by whether its source contains an HTML tag."""
    if HTML_TAG.search(body_template) is not None:
        return True
    start = body_template.find(COMMENT_START)
    return start != -1 and body_template.find(COMMENT_END, start + len(COMMENT_START)) != -1


def render(
    channel: Channel, subject_template: str | None, body_template: str, payload: Mapping[str, Any]
) -> Rendered:
    """Render a notification's subject and body with the payload as variables.

    Raises RenderError, prefixed "subject: " or "body: ", when a template does not compile,
    uses a variable the payload lacks, or tries something the sandbox forbids; its subclass
    RenderBudgetExceeded when the template is over one of the budgets.
    """
    context = dict(payload)
    budget = _Budget()
    subject = None
    if subject_template is not None:
        subject = _render_part("subject", subject_template, context, False, budget)
    html = channel == Channel.EMAIL and is_html(body_template)
    body = _render_part("body", body_template, context, html, budget)
    return Rendered(subject=subject, body=body, html=html)


def locale_fallbacks(locale: str) -> list[str]:
    """The language tags a notification in ``locale`` may be rendered in, best first, lower
    case (tags are case-insensitive): ``pt-BR`` → ``["pt-br", "pt"]``."""
    subtags = locale.lower().split("-")
    return ["-".join(subtags[:count]) for count in range(len(subtags), 0, -1)]


def pick_locale(variants: Iterable[str], locale: str | None) -> str | None:
    """Which of a template's locale variants (its tags, as the tenant spelled them) a
    notification in ``locale`` gets: the tag itself, else the tag cut along its subtags
    (``pt-BR`` → ``pt``); ``None`` when none fits, for the template's default."""
    if locale is None:
        return None
    by_tag = {variant.lower(): variant for variant in variants}
    return next((by_tag[tag] for tag in locale_fallbacks(locale) if tag in by_tag), None)


def check_syntax(subject_template: str | None, body_template: str) -> None:
    """Compile both templates so a bad one is refused when it is saved, not when it is sent.

    Raises RenderError whose message starts with the field at fault, "subject_template: " or
    "body_template: ", so the API can name the field in its response.
    """
    for field, source in (("subject_template", subject_template), ("body_template", body_template)):
        if source is not None:
            _compile_part(field, source, autoescape=False)


def starter_templates() -> list[StarterTemplate]:
    """The starter templates shipped in notifyhub/templates, sorted by (channel, name).

    Raises ValueError naming the file when one is malformed; that is a packaging bug.
    """
    root = resources.files("notifyhub").joinpath("templates")
    found = [
        _parse_starter(channel_dir.name, entry)
        for channel_dir in root.iterdir()
        if channel_dir.is_dir()
        for entry in channel_dir.iterdir()
        if entry.is_file() and entry.name.endswith(STARTER_TEMPLATE_SUFFIX)
    ]
    return sorted(found, key=lambda template: (template.channel, template.name))


class _Budget:
    """What is left of one render's budgets."""

    __slots__ = ("deadline", "depth", "steps")

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.deadline = time.thread_time() + MAX_RENDER_SECONDS
        self.depth = 0

    def spend(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise RenderBudgetExceeded(
                f"over the budget of {MAX_RENDER_STEPS} steps (loop iterations, calls, lookups)"
            )
        if time.thread_time() > self.deadline:
            raise RenderBudgetExceeded(
                f"over the budget of {MAX_RENDER_SECONDS * 1000:g} ms of rendering time"
            )


# The budget of the render under way. Hooks find it here because Jinja2 passes them no
# context of ours; outside a render (constant folding while compiling) nothing is counted.
_BUDGET: ContextVar[_Budget | None] = ContextVar("render_budget", default=None)


def _spend() -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.spend()


def _over_size(what: str) -> RenderBudgetExceeded:
    return RenderBudgetExceeded(f"{what} is over the budget of {MAX_RENDERED_CHARS} characters")


def _weight(value: Any) -> int:
    """About how many characters ``value`` prints as: its strings' lengths plus one per item,
    nested; stops counting past MAX_RENDERED_CHARS, so it costs at most that many steps."""
    total = 0
    pending = [value]
    while pending and total <= MAX_RENDERED_CHARS:
        item = pending.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, list | tuple | set | frozenset | dict):
            total += len(item) + 1
            if total <= MAX_RENDERED_CHARS:
                pending.extend(item.items() if isinstance(item, dict) else item)
        else:
            total += 1
    return total


_V = TypeVar("_V")


def _checked(value: _V, what: str = "a value") -> _V:
    """``value`` when it is within the size budget; the size of a result built in C is only
    known afterwards, so each amplifying operation is also estimated before (``_ESTIMATES``)."""
    if (
        isinstance(value, str | list | tuple | set | frozenset | dict)
        and _weight(value) > MAX_RENDERED_CHARS
    ):
        raise _over_size(what)
    if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
        raise RenderBudgetExceeded(f"{what} is over the budget of {MAX_INT_BITS}-bit integers")
    return value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, str) else _weight(value)


def _count(text: str, part: str) -> int:
    return len(text) + 1 if part == "" else text.count(part)


def _replace_size(text: Any, old: Any, new: Any, count: Any = -1, *_: Any) -> int:
    found = _count(str(text), str(old))
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(str(text)) + found * max(0, len(str(new)) - len(str(old)))


def _join_size(separator: Any, items: Any) -> int:
    many = len(items) if hasattr(items, "__len__") else 0
    return len(str(separator)) * many + _weight(items)


def _width(text: Any, width: Any = 0, *_: Any) -> int:
    return max(len(str(text)), width if isinstance(width, int) else 0)


def _percent_widths(template: str, values: Any) -> int:
    """The largest width or precision a ``%`` format asks for, written or passed (``%*s``)."""
    written = [int(number) for number in _PERCENT_WIDTH.findall(template) if number]
    passed = [v for v in (values if isinstance(values, tuple) else (values,)) if isinstance(v, int)]
    return max([len(template), *written, *passed])


# A ``%`` conversion's flags, width and precision; each part is a simple run, so linear.
_PERCENT_WIDTH = re.compile(r"%[-#0 +]*(\d*)(?:\.(?:\d*))?")
_DIGIT_RUN = re.compile(r"\d{7,}")

# How big a string method's or filter's result would be, estimated from its arguments
# before it runs: the operations that turn a small input into a huge output.
_ESTIMATES: dict[str, Callable[..., int]] = {
    "replace": _replace_size,
    "center": _width,
    "ljust": _width,
    "rjust": _width,
    "zfill": _width,
    "expandtabs": lambda text, tabsize=8, *_: len(text) + text.count("\t") * tabsize,
    "indent": lambda text, width=4, *_, **__: (
        len(str(text))
        + (str(text).count("\n") + 1) * (width if isinstance(width, int) else len(str(width)))
    ),
    "wordwrap": lambda text, width=79, _long=True, wrapstring=None, *_, **__: (
        len(str(text)) * (1 + len(wrapstring or "\n"))
    ),
    "batch": lambda items, linecount, fill_with=None, *_: _weight(items) + linecount,
    "slice": lambda items, slices, fill_with=None, *_: _weight(items) + slices,
    "lipsum": lambda n=5, html=True, min=20, max=100: n * max * 16,
    "format": lambda template, *args, **kwargs: (
        _percent_widths(str(template), args) + _weight(args) + _weight(kwargs)
    ),
}
# Filters that print their input, whose cost follows its nested size, not its length.
_PRINTING_FILTERS = frozenset(
    {"string", "tojson", "pprint", "xmlattr", "urlencode", "e", "escape", "forceescape"}
)


def _estimate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    estimate = _ESTIMATES.get(name)
    if estimate is None:
        return 0
    try:
        return estimate(*args, **kwargs)
    except (TypeError, AttributeError, ValueError):
        return 0  # arguments the operation itself refuses: let it say so


def _budgeted_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE_ITEMS:
        raise RenderBudgetExceeded(f"range() is over the budget of {MAX_RANGE_ITEMS} items")
    return numbers


def _finalize(value: Any) -> Any:
    """Every ``{{ ... }}`` output passes here before it is turned into text."""
    _spend()
    if not isinstance(value, str):
        _checked(value, "an output")
    return value


def _listed(items: Any) -> Any:
    """A generator as a list, so that what joining it costs can be known first."""
    return items if hasattr(items, "__len__") else list(items)


def _budgeted_function(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """A filter or global function that spends a step, refuses a result its arguments make
    too big before it runs, and checks the result it made."""
    # Filters that take the context or environment get it first; the value follows.
    skip = 0 if getattr(function, "jinja_pass_arg", None) is None else 1

    @functools.wraps(function)
    def budgeted(*args: Any, **kwargs: Any) -> Any:
        _spend()
        if name == "join" and len(args) > skip:
            args = (*args[:skip], _listed(args[skip]), *args[skip + 1 :])
            separator = args[skip + 1] if len(args) > skip + 1 else kwargs.get("d", "")
            if _join_size(separator, args[skip]) > MAX_RENDERED_CHARS:
                raise _over_size(f"the result of {name}")
        if _estimate(name, args[skip:], kwargs) > MAX_RENDERED_CHARS:
            raise _over_size(f"the result of {name}")
        if name in _PRINTING_FILTERS and len(args) > skip:
            _checked(args[skip], f"the input of {name}")
        return _checked(function(*args, **kwargs), f"the result of {name}")

    return budgeted


class _BudgetedCodeGenerator(CodeGenerator):
    """Jinja2's code generator, with every loop's items and every ``~`` counted."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        node.iter = nodes.Call(
            nodes.EnvironmentAttribute("budgeted_items"), [node.iter], [], None, None
        ).set_lineno(node.lineno)
        super().visit_For(node, frame)

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.budgeted_concat(")
        super().visit_Concat(node, frame)
        self.write(")")


class _BudgetedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with the render budgets: each hook Jinja2's sandbox calls (calls, lookups,
    operators) and each loop item spends a step and checks what it built.

    The immutable sandbox also refuses methods that change lists and dicts (``append``,
    ``update``), so a template cannot alter the payload its caller keeps using.
    """

    code_generator_class = _BudgetedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, autoescape: bool) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=autoescape, finalize=_finalize)
        self.globals["range"] = _budgeted_range
        # Jinja2 types its globals as dict[str, object]; "lipsum" is generate_lorem_ipsum.
        lipsum = cast(Callable[..., Any], self.globals["lipsum"])
        self.globals["lipsum"] = _budgeted_function("lipsum", lipsum)
        self.filters = {name: _budgeted_function(name, f) for name, f in self.filters.items()}

    def budgeted_items(self, items: Iterable[Any]) -> Iterator[Any]:
        for item in items:
            _spend()
            yield item

    def budgeted_concat(self, text: str) -> str:
        _spend()
        return _checked(text, "a joined text")

    def getattr(self, obj: Any, attribute: str) -> Any:
        _spend()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _spend()
        return super().getitem(obj, argument)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _spend()
        if operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if max(left.bit_length() - 1, 1) * right > MAX_INT_BITS:
                raise RenderBudgetExceeded(f"a power is over the budget of {MAX_INT_BITS}-bit integers")
        elif operator == "*":
            for many, times in ((left, right), (right, left)):
                if not isinstance(many, int) and isinstance(times, int) and times > 0:
                    if _size(many) * times > MAX_RENDERED_CHARS:
                        raise _over_size("a repeated value")
        elif operator == "+" and not isinstance(left, int | float):
            if _size(left) + _size(right) > MAX_RENDERED_CHARS:
                raise _over_size("a sum")
        elif operator == "%" and isinstance(left, str):
            if _percent_widths(left, right) + _weight(right) > MAX_RENDERED_CHARS:
                raise _over_size("a %-formatted text")
        return _checked(super().call_binop(context, operator, left, right))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        specs = [spec for _, _, spec, _ in string.Formatter().parse(value.__self__) if spec]
        if any(_DIGIT_RUN.search(spec) for spec in specs):
            raise RenderBudgetExceeded(
                f"a format width is over the budget of {MAX_RENDERED_CHARS} characters"
            )

        @functools.wraps(wrapped)
        def budgeted(*args: Any, **kwargs: Any) -> str:
            widths = [v for v in (*args, *kwargs.values()) if isinstance(v, int)]
            if specs and any(abs(w) > MAX_RENDERED_CHARS for w in widths):
                raise _over_size("a formatted text")
            if _weight(args) + _weight(kwargs) > MAX_RENDERED_CHARS:
                raise _over_size("the values of a format")
            return _checked(wrapped(*args, **kwargs), "a formatted text")

        return budgeted

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = _BUDGET.get()
        _spend()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            name = getattr(__obj, "__name__", "")
            if _estimate(name, (owner, *args), kwargs) > MAX_RENDERED_CHARS:
                raise _over_size(f"the result of .{name}()")
            if name == "join" and args:
                args = (_listed(args[0]), *args[1:])
                if _join_size(owner, args[0]) > MAX_RENDERED_CHARS:
                    raise _over_size("the result of .join()")
        if isinstance(__obj, LoopContext) and args:
            # A recursive loop's loop(children) iterates them itself: count those too.
            args = (__self.budgeted_items(args[0]), *args[1:])
        if budget is None:
            return super().call(__context, __obj, *args, **kwargs)
        budget.depth += 1
        try:
            if budget.depth > MAX_CALL_DEPTH:
                raise RenderBudgetExceeded(f"calls nest deeper than the budget of {MAX_CALL_DEPTH}")
            return _checked(super().call(__context, __obj, *args, **kwargs), "a call's result")
        finally:
            budget.depth -= 1


_PLAIN = _BudgetedEnvironment(autoescape=False)
_HTML = _BudgetedEnvironment(autoescape=True)


@functools.lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _compile(source: str, autoescape: bool) -> Template:
    environment = _HTML if autoescape else _PLAIN
    return environment.from_string(source)


def _compile_part(part: str, source: str, autoescape: bool) -> Template:
    if len(source) > MAX_TEMPLATE_CHARS:
        raise RenderBudgetExceeded(
            f"{part}: {len(source)} characters, over the budget of {MAX_TEMPLATE_CHARS}"
        )
    try:
        return _compile(source, autoescape)
    except TemplateError as exc:
        raise RenderError(f"{part}: {_describe(exc)}") from exc
    except RecursionError:
        raise RenderError(f"{part}: nested too deeply to compile") from None


def _render_part(
    part: str, source: str, context: dict[str, Any], autoescape: bool, budget: _Budget
) -> str:
    template = _compile_part(part, source, autoescape)
    token = _BUDGET.set(budget)
    try:
        chunks, size = [], 0
        # Output is checked as it is produced, so a template printing forever stops early.
        for chunk in template.generate(context):
            size += len(chunk)
            if size > MAX_RENDERED_CHARS:
                raise _over_size("the output")
            chunks.append(chunk)
        return "".join(chunks)
    except RenderBudgetExceeded as exc:
        raise RenderBudgetExceeded(f"{part}: {exc}") from None
    except TemplateError as exc:
        raise RenderError(f"{part}: {_describe(exc)}") from exc
    except Exception as exc:
        # A tenant's template can fail in plain Python too ({{ 1 / 0 }}, a filter given the
        # wrong type, a range over the sandbox's limit); that is the tenant's error to fix,
        # not a crash of the worker rendering it.
        raise RenderError(f"{part}: {type(exc).__name__}: {exc}") from exc
    finally:
        _BUDGET.reset(token)


def _describe(exc: TemplateError) -> str:
    if isinstance(exc, TemplateSyntaxError):
        return f"syntax error at line {exc.lineno}: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"not allowed in a template: {exc.message}"
    return str(exc.message)


def _parse_starter(channel_name: str, entry: Traversable) -> StarterTemplate:
    where = f"templates/{channel_name}/{entry.name}"
    text = entry.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != FRONT_MATTER_FENCE:
        raise ValueError(f"{where}: must start with a {FRONT_MATTER_FENCE!r} front-matter line")
    try:
        end = next(i for i in range(1, len(lines)) if lines[i].strip() == FRONT_MATTER_FENCE)
    except StopIteration:
        raise ValueError(
            f"{where}: front matter is not closed by a {FRONT_MATTER_FENCE!r} line"
        ) from None

    header: dict[str, str] = {}
    for number, line in enumerate(lines[1:end], start=2):
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            raise ValueError(f"{where}: line {number}: expected 'key: value', got {line.strip()!r}")
        header[key.strip()] = value.strip()

    name = header.pop("name", None)
    channel = header.pop("channel", None)
    subject = header.pop("subject", None)
    # The file's place is what the API lists it under, so the header must agree with it.
    expected_name = entry.name.removesuffix(STARTER_TEMPLATE_SUFFIX)
    if name != expected_name or channel != channel_name:
        raise ValueError(
            f"{where}: header says name={name!r}, channel={channel!r}; "
            f"the file's path says name={expected_name!r}, channel={channel_name!r}"
        )
    try:
        parsed_channel = Channel(channel)
    except ValueError:
        raise ValueError(f"{where}: unknown channel {channel!r}") from None
    return StarterTemplate(
        name=name,
        channel=parsed_channel,
        subject_template=subject,
        body_template="".join(lines[end + 1 :]),
        metadata=dict(header),
    )
