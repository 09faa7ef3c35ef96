"""What hostile templates cost a worker, with the render limits and without them.

Every case is a template an operator could save (the issue's four and the worst others
we found), rendered in a fresh subprocess so that its peak RSS is its own:

* ``limited``: :class:`~dispatcher.templating.renderer.Renderer` with the default limits (as a
  worker renders), the case at full size. Each is rendered three times; the worst
  time counts.
* ``naive``: a plain ``ImmutableSandboxedEnvironment`` (Jinja's sandbox, no budget) at
  a reduced size, so that it finishes: it runs under a 20 s timeout and a 3 GiB address
  space limit, and its size is printed next to it.

Peak RSS is ``ru_maxrss`` after the render minus before it (the growth of the process's
high-water mark), in MiB. The ratio is naive time / limited time; the naive case is
smaller, so the real ratio is larger still.

Run: ``python -m bench.template_cost [case ...]``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from dispatcher.errors import TemplateError
from dispatcher.templating import filters
from dispatcher.templating.renderer import Renderer

NAIVE_TIMEOUT = 20.0
NAIVE_ADDRESS_SPACE = 3 * 1024**3
BIG = 262_144


@dataclass(frozen=True)
class Case:
    """A hostile template; ``data(n)`` builds its context for size ``n``."""

    name: str
    source: str
    data: Callable[[int], dict[str, Any]]
    #: Full size (the issue's), and the size the naive baseline runs at.
    full: int
    naive: int


def _n(n: int) -> dict[str, Any]:
    return {"n": n}


CASES = [
    Case(
        "lipsum",
        "{{ lipsum(n, html=False, min=99, max=100)|length }}",
        _n,
        100_000,
        10_000,
    ),
    Case(
        "wordwrap(1) x3",
        "{% set s = 'a' * n %}{{ s|wordwrap(1)|wordwrap(1)|wordwrap(1)|length }}",
        _n,
        BIG,
        BIG // 8,
    ),
    Case(
        "set block x400",
        "{% set s = 'a' * 262144 %}{% set x %}{% for i in range(n) %}{{ s }}{% endfor %}"
        "{% endset %}{{ x|length }}",
        _n,
        400,
        400,
    ),
    Case(
        "set block x4000",
        "{% set s = 'a' * 262144 %}{% set x %}{% for i in range(n) %}{{ s }}{% endfor %}"
        "{% endset %}{{ x|length }}",
        _n,
        4000,
        1000,
    ),
    Case(
        "ticket_id != 123",
        "{% if ticket_id != 123 %}{% set s = 'a' * 262144 %}{% set x %}"
        "{% for i in range(n) %}{{ s }}{% endfor %}{% endset %}{{ x|length }}{% endif %}",
        lambda n: {"n": n, "ticket_id": 124},
        1000,
        1000,
    ),
    Case(
        "literal text in a set block",
        "{% set x %}{% for i in range(n) %}" + "x" * 60_000 + "{% endfor %}{% endset %}"
        "{{ x|length }}",
        _n,
        100_000,
        5_000,
    ),
    Case(
        "exponential macro",
        "{% macro f(k) %}{% if k %}{{ f(k-1) }}{{ f(k-1) }}{% endif %}{% endmacro %}{{ f(n) }}",
        _n,
        60,
        18,
    ),
    Case(
        "nested loops",
        "{% for i in range(n) %}{% for j in range(n) %}{% endfor %}{% endfor %}",
        _n,
        100_000,
        2_000,
    ),
    Case(
        "join of repeated refs",
        "{% set s = 'a' * 1000 %}{{ ([s] * n)|join|length }}",
        _n,
        100_000,
        10_000,
    ),
    Case(
        "map center join",
        "{{ range(n)|map('string')|map('center', 1000)|join|length }}",
        _n,
        100_000,
        10_000,
    ),
    Case(
        "str.replace('', s)",
        "{% set s = 'a' * n %}{{ s.replace('', s)|length }}",
        _n,
        8192,
        2048,
    ),
    Case(
        "trim with many chars",
        "{% set s = 'a' * n %}{{ s|trim(('b' * (n - 1)) ~ 'a')|length }}",
        _n,
        131_072,
        16_384,
    ),
    Case(
        "title in a loop",
        "{% set s = 'ab ' * 87381 %}{% for i in range(n) %}{{ (s|title)|length }}{% endfor %}",
        _n,
        1000,
        20,
    ),
    Case(
        "wordwrap(1) 16k in a loop",
        "{% set s = 'a' * 16384 %}{% for i in range(n) %}{{ (s|wordwrap(1))|length }}{% endfor %}",
        _n,
        1000,
        20,
    ),
    Case(
        "striptags in a loop",
        "{% set s = '<a>' * 87381 %}{% for i in range(n) %}{{ (s|striptags)|length }}{% endfor %}",
        _n,
        1000,
        20,
    ),
    Case(
        "sort 10k strings in a loop",
        "{% set l = range(10000)|map('string')|list %}{% for i in range(n) %}"
        "{{ (l|sort(reverse=true)|first) }}{% endfor %}",
        _n,
        1000,
        50,
    ),
    Case(
        "deep recursion",
        "{% macro f(k) %}{% if k %}{{ f(k-1) }}{% endif %}x{% endmacro %}{{ f(n)|length }}",
        _n,
        100_000,
        150,
    ),
    Case(
        "printf with 80k fields",
        "{% set s = 'a' * 200 %}{{ (('%s' * n) % ((s,) * n))|length }}",
        _n,
        80_000,
        5_000,
    ),
    Case(
        "str.format repeating a field",
        "{% set s = 'a' * 10000 %}{{ ('{0}' * n).format(s)|length }}",
        _n,
        80_000,
        5_000,
    ),
    Case(
        "nested list doubling",
        "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}{{ ns.l|length }}",
        _n,
        40,
        18,
    ),
]


def limited(case: Case, size: int) -> tuple[float, str]:
    renderer = Renderer([])
    template = renderer.compile_source(case.source, "body")
    context = case.data(size)
    worst = 0.0
    outcome = ""
    for _ in range(3):
        started = time.perf_counter()
        try:
            outcome = f"rendered {len(renderer.render_template(template, case.name, context))}"
        except TemplateError as exc:
            outcome = exc.reason
        worst = max(worst, time.perf_counter() - started)
    return worst, outcome


def naive(case: Case, size: int) -> tuple[float, str]:
    resource.setrlimit(resource.RLIMIT_AS, (NAIVE_ADDRESS_SPACE, NAIVE_ADDRESS_SPACE))
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    filters.install(env)
    template = env.from_string(case.source)
    context = case.data(size)
    started = time.perf_counter()
    try:
        outcome = f"rendered {len(template.render(context))}"
    except MemoryError:
        outcome = "MemoryError"
    except Exception as exc:  # the sandbox's own refusals (RecursionError, range...)
        outcome = f"{type(exc).__name__}: {str(exc)[:50]}"
    return time.perf_counter() - started, outcome


def run_one(mode: str, name: str) -> None:
    """In the subprocess: render one case and print its figures as JSON."""
    case = next(c for c in CASES if c.name == name)
    size = case.full if mode == "limited" else case.naive
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    seconds, outcome = (limited if mode == "limited" else naive)(case, size)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "rss_mib": (after - before) / 1024, "outcome": outcome}))


def measure(mode: str, case: Case) -> dict[str, Any]:
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.template_cost", "--one", mode, case.name],
            capture_output=True,
            text=True,
            timeout=NAIVE_TIMEOUT + 10,
        )
    except subprocess.TimeoutExpired:
        return {"seconds": float("inf"), "rss_mib": float("nan"), "outcome": "timed out"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["?"])[-1]
        return {"seconds": float("nan"), "rss_mib": float("nan"), "outcome": tail[:60]}
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def main(names: list[str]) -> None:
    cases = [c for c in CASES if not names or c.name in names]
    print(f"limits: {Renderer([]).limits}")
    header = f"{'case':30} {'limited':>9} {'RSS':>7}  {'naive (size)':>22} {'RSS':>8} {'ratio':>7}"
    print(header)
    worst_time = worst_rss = 0.0
    for case in cases:
        lim = measure("limited", case)
        nai = measure("naive", case)
        worst_time = max(worst_time, lim["seconds"])
        worst_rss = max(worst_rss, lim["rss_mib"])
        ratio = nai["seconds"] / lim["seconds"] if lim["seconds"] else float("nan")
        print(
            f"{case.name:30} {lim['seconds'] * 1000:7.1f}ms {lim['rss_mib']:5.1f}MB  "
            f"{nai['seconds'] * 1000:10.1f}ms ({case.naive:>7}) {nai['rss_mib']:6.1f}MB "
            f"{ratio:6.0f}x"
        )
        print(f"{'':32}limited: {lim['outcome'][:70]}")
        print(f"{'':32}naive:   {nai['outcome'][:70]}")
    print(
        f"worst limited render: {worst_time * 1000:.1f} ms; worst peak RSS growth: "
        f"{worst_rss:.1f} MiB"
    )


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--one":
        run_one(sys.argv[2], sys.argv[3])
    else:
        main(sys.argv[1:])
