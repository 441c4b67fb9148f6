"""How long a hostile template holds the event loop: the longest single blocking render.

Each hostile template below (``tests/content/test_budgets.py`` checks which budget stops
each) is rendered
``ROUNDS`` times, as the pipeline renders it (synchronously, on the loop); the figure is the
slowest single render, which is what one template can make every other task wait.

    .venv/bin/python bench/template_budget.py
"""

from __future__ import annotations

import time

from notifyhub.content.rendering import MAX_RENDER_SECONDS, RenderError, render
from notifyhub.model.channels import Channel

ROUNDS = 5
# Payload values as big as a payload allows (64 KB in all would do; these are per value).
PAYLOAD = {"xs": list(range(1000)), "big": "x" * 60_000, "nl": "\n" * 60_000}
HOSTILE = {
    "loop bomb": "{% for i in range(10000) %}{% for j in range(10000) %}{% endfor %}{% endfor %}",
    "payload loop bomb": "{% for a in xs %}{% for b in xs %}{% for c in xs %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "huge range": "{{ range(10 ** 8) | length }}",
    "output size": "{% for i in range(10000) %}{{ big }}{% endfor %}",
    "exponential macros": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}"
    "{% endmacro %}{{ f(40) }}",
    "endless macro recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "recursive loop": "{% for x in range(100) recursive %}{{ loop(range(100)) }}{% endfor %}",
    "string multiplication": "{{ 'a' * 10 ** 9 }}",
    "huge power": "{{ 2 ** 100000000 }}",
    "doubling": "{% set ns = namespace(s='ab') %}{% for i in range(60) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
    "nested lists": "{% set a = [big, big, big, big, big] %}{% set b = [a, a, a, a, a] %}{{ b }}",
    "padding filter": "{{ 'x' | center(1000000000) }}",
    "padding method": "{{ 'x'.ljust(1000000000) }}",
    "replace amplifier": "{{ big.replace('', big) }}",
    "format width": "{{ '{:>1000000000}'.format(1) }}",
    "percent width": "{{ '%1000000000s' % 'a' }}",
    "indent amplifier": "{{ nl | indent(200000) }}",
    "lorem ipsum": "{{ lipsum(1000000) }}",
}


def slowest_render(source: str) -> float:
    worst = 0.0
    for _ in range(ROUNDS):
        started = time.perf_counter()
        try:
            render(Channel.EMAIL, None, source, PAYLOAD)
        except RenderError:
            pass
        worst = max(worst, time.perf_counter() - started)
    return worst


def main() -> None:
    holds = {name: slowest_render(source) for name, source in HOSTILE.items()}
    for name, seconds in sorted(holds.items(), key=lambda item: -item[1]):
        print(f"{name:28} {seconds * 1000:8.1f} ms")
    name, seconds = max(holds.items(), key=lambda item: item[1])
    print(
        f"worst-case event-loop hold: {seconds * 1000:.1f} ms ({name}); "
        f"render time budget {MAX_RENDER_SECONDS * 1000:g} ms"
    )


if __name__ == "__main__":
    main()
