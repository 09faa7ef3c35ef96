"""Operators' templates cannot reach Python, and cannot make a render run away."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import jinja2
import pytest
from freezegun import freeze_time
from packaging.version import Version

from dispatcher.errors import TemplateError
from dispatcher.templating.renderer import Renderer
from dispatcher.templating.sandbox import MAX_LOOP_ITERATIONS, MAX_OUTPUT_CHARS


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    folder = tmp_path_factory.mktemp("tpl")
    (folder / "_layouts").mkdir()
    (folder / "_layouts" / "secret.j2").write_text("layout")
    return Renderer([folder], time_limit=0.3)


@pytest.fixture(scope="module")
def patient_renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    """For limits other than time: a slow machine (or coverage) must not trip the clock
    before the limit under test."""
    return Renderer([tmp_path_factory.mktemp("tpl")], time_limit=30)


def render(renderer: Renderer, source: str, part: str = "body", **data: Any) -> str:
    return renderer.render_template(renderer.compile_source(source, part), "test", data)


def test_jinja_is_a_version_without_the_published_sandbox_escapes() -> None:
    # CVE-2024-56201, CVE-2024-56326 fixed in 3.1.5; CVE-2025-27516 in 3.1.6.
    assert Version(jinja2.__version__) >= Version("3.1.6")


ESCAPES = [
    # Attribute walks to Python internals.
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ x.__class__.__base__.__subclasses__() }}",
    "{{ recipient.__class__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__.os }}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
    "{{ self._TemplateReference__context }}",
    "{{ (x|attr('__class__')) }}",
    "{{ x|attr('__class__')|attr('__base__') }}",
    "{{ []|attr('append')(1) }}",
    "{{ {}.update(a=1) }}",
    # str.format field lookups into internals, direct and indirect.
    "{{ '{0.__class__.__mro__}'.format(x) }}",
    "{{ '{0.__init__.__globals__}'.format(cycler) }}",
    "{{ '{x.__class__}'.format_map({'x': 1}) }}",
    # CVE-2024-56326: a stored reference to a string's format method, called later.
    "{% set fmt = '{0.__call__.__builtins__[__import__]}'.format %}{{ fmt(cycler) }}",
    "{% set ns = namespace(run='{0.__call__.__builtins__[__import__]}'.format) %}"
    "{{ ns.run(lipsum) }}",
    # CVE-2025-27516: |attr fetching the plain format method.
    '{{ "{0.__call__.__builtins__[__import__]}" | attr("format")(not_here) }}',
    '{{ "{0.__call__.__builtins__[__import__]}" | attr("format")(lipsum) }}',
    '{{ ("{0.__class__}"|safe)|attr("format")(lipsum) }}',
]


@pytest.mark.parametrize("source", ESCAPES)
def test_sandbox_escapes_are_refused_with_a_clear_error(renderer: Renderer, source: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, source, x=42, recipient={"locale": "en"})
    reason = info.value.reason
    assert reason.startswith("unsafe: ") or "is not safely callable" in reason, reason
    assert "<class" not in str(info.value) and "built-in" not in str(info.value)


def test_format_without_internals_still_works(renderer: Renderer) -> None:
    assert render(renderer, "{{ '{0} x {1}'.format(a, b) }}", a=2, b="<b>") == "2 x <b>"
    assert render(renderer, "{{ '%.2f'|format(3.14159) }}") == "3.14"


def test_includes_cannot_leave_the_templates_folders(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match=r"pyproject\.toml"):
        render(renderer, "{% include '../../pyproject.toml' %}")
    with pytest.raises(TemplateError, match="passwd"):
        render(renderer, "{% include '/etc/passwd' %}")
    assert render(renderer, "{% include '_layouts/secret.j2' %}") == "layout"
    with pytest.raises(TemplateError) as info:
        render(renderer, "line one\n{% extends '_layouts/nope.j2' %}")
    assert (info.value.reason, info.value.line) == ("template '_layouts/nope.j2' not found", 2)


def test_html_parts_are_autoescaped_and_text_parts_are_not(renderer: Renderer) -> None:
    data = {"name": "Tom & <Jerry>"}
    assert render(renderer, "{{ name }}", "html", **data) == "Tom &amp; &lt;Jerry&gt;"
    assert render(renderer, "{{ name }}", "subject", **data) == "Tom & <Jerry>"


def test_a_missing_variable_names_it_and_its_line(renderer: Renderer) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, "Hello\n{{ seller }} sold", ticket_id=1)
    assert info.value.reason == "missing variable 'seller'"
    assert info.value.line == 2
    with pytest.raises(TemplateError) as info:
        render(renderer, "{{ recipient.nickname }}", recipient={"locale": "en"})
    assert info.value.reason == "missing variable 'nickname'"


def test_a_syntax_error_gives_line_and_reason(renderer: Renderer) -> None:
    with pytest.raises(TemplateError) as info:
        renderer.compile_source("one\ntwo\n{% if x %}three", "body")
    assert info.value.line == 3
    assert "syntax error at line 3" in info.value.reason
    assert "endif" in info.value.reason


RUNAWAYS = [
    (
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        f"more than {MAX_LOOP_ITERATIONS} loop iterations",
    ),
    (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
        "render took longer than 0.3s",
    ),
    ("{{ 'a' * 10**7 }}", "repetition of 10000000"),
    ("{{ [1] * 10**7 }}", "repetition of 10000000"),
    ("{{ 9 ** 99999 }}", "power result larger than"),
    ("{{ '%0999999999d' % 1 }}", "format field wider than"),
    ("{{ '%*d' % (999999999, 1) }}", "format field wider than"),
    ("{{ '{:>999999999}'.format(1) }}", "format field wider than"),
    ("{{ '{:{w}}'.format(1, w=999999999) }}", "format field wider than"),
    ("{{ '%099999999d'|format(1) }}", "format field wider than"),
    ("{{ 'x'|center(999999999) }}", "center width"),
    ("{{ 'x'|indent(999999999, true) }}", "indent width"),
    ("{{ ('a' * 200000)|replace('a', 'aaaa') }}", "replace result of 800000"),
    (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}"
        "{% endfor %}",
        "concatenation of 524288",
    ),
    (
        "{% set ns = namespace(l=[1]) %}{% for i in range(40) %}{% set ns.l = [ns.l, ns.l] %}"
        "{% endfor %}",
        "namespace value of more than",
    ),
    ("{% set s = 'a' * 200000 %}{{ s + s }}", "concatenation of 400000"),
    (
        "{% for i in range(2000) %}{{ 'a' * 200 }}{% endfor %}",
        f"output exceeds {MAX_OUTPUT_CHARS} characters",
    ),
    (
        "{% macro m() %}{% for i in range(3000) %}{{ 'b' * 100 }}{% endfor %}{% endmacro %}"
        "{{ m() }}",
        "call result of 300000",
    ),
]


@pytest.mark.parametrize(("source", "reason"), RUNAWAYS)
def test_runaway_templates_stop_with_a_render_limit(
    request: pytest.FixtureRequest, source: str, reason: str
) -> None:
    timed = reason.startswith("render took longer")
    chosen: Renderer = request.getfixturevalue("renderer" if timed else "patient_renderer")
    with pytest.raises(TemplateError) as info:
        render(chosen, source)
    assert info.value.reason.startswith("render limit: ")
    assert reason in info.value.reason


def test_ordinary_loops_keep_loop_variables(renderer: Renderer) -> None:
    out = render(
        renderer,
        "{% for x in items if x > 1 %}{{ loop.index }}/{{ loop.length }}"
        "{{ ',' if not loop.last }}{% endfor %}"
        "{% for n in tree recursive %}[{{ n.name }}{{ loop(n.children) }}]{% endfor %}",
        items=[1, 2, 3],
        tree=[{"name": "a", "children": [{"name": "b", "children": []}]}],
    )
    assert out == "1/2,2/2[a[b]]"


def test_time_limit_applies_per_thread(renderer: Renderer) -> None:
    slow = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    errors: list[str] = []
    fast: list[str] = []

    def run_slow() -> None:
        try:
            render(renderer, slow)
        except TemplateError as exc:
            errors.append(exc.reason)

    def run_fast() -> None:
        for _ in range(50):
            fast.append(render(renderer, "{% for i in range(3) %}{{ i }}{% endfor %}"))

    threads = [threading.Thread(target=run_slow), threading.Thread(target=run_fast)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == ["render limit: render took longer than 0.3s"]
    assert fast == ["012"] * 50
    assert not any(t.is_alive() for t in threads)  # the slow render was stopped


def test_budget_is_not_left_behind_after_a_render(renderer: Renderer) -> None:
    from dispatcher.templating.sandbox import current_budget

    with pytest.raises(TemplateError):
        render(renderer, "{{ nope }}")
    assert current_budget.get() is None
    # Outside a render (e.g. a template used directly), loops still work.
    template = renderer.text_env.from_string("{% for i in range(3) %}{{ i }}{% endfor %}")
    assert template.render() == "012"


def test_renderer_folder_templates_use_the_same_guards(tmp_path: Path) -> None:
    path = tmp_path / "t" / "en" / "in_app" / "title.j2"
    path.parent.mkdir(parents=True)
    path.write_text(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    )
    r = Renderer([tmp_path], time_limit=5)
    with pytest.raises(TemplateError) as info:
        r.render("t", "in_app", ["title"], "en", {})
    assert "loop iterations" in info.value.reason
    assert str(info.value).startswith(f"{path}:1: ")


def test_time_limit_still_holds_under_a_frozen_clock(renderer: Renderer) -> None:
    # The deadline looks at a cheap wall clock before the CPU clock; freezegun (in an
    # app's own tests) must not freeze that wall clock and so switch the deadline off.
    slow = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}"
    with freeze_time("2027-03-28 01:59:59"), pytest.raises(TemplateError) as info:
        render(renderer, slow)
    assert info.value.reason == "render limit: render took longer than 0.3s"
