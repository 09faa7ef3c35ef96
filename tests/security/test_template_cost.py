"""Item 2: a template's render cost is bounded in time and memory, at save and in workers.

The issue's reproductions (``lipsum(100000)``, three chained ``wordwrap(1)`` on a
262,144-character string, a ``{% set %}`` block looping 400 or 4,000 times over such a
string, and a template that misbehaves only on data other than the type's example) are
refused at save within the time limit, and the data-dependent one fails its delivery in
a real Celery worker with the ``template_limit`` reason while the worker goes on to
deliver the next event. Elapsed times are checked against a generous multiple of the
limit: they prove the bound, they are not benchmarks (``python -m bench.template_cost``
prints the figures).
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from jinja2.sandbox import ImmutableSandboxedEnvironment
from sqlalchemy import select

from dispatcher import DeliveryStatus, Dispatcher, Reason, Settings
from dispatcher.db.models import Delivery, DeliveryStep, Notification
from dispatcher.engine.explain import summarize
from dispatcher.errors import ConfigurationError, TemplateError, TemplateLimitError
from dispatcher.templating import filters
from dispatcher.templating.limits import DEFAULT_TIME_LIMIT, MAX_OUTPUT_CHARS
from dispatcher.templating.renderer import Renderer
from tests.conftest import StartWorker, make_settings, wait_for

LIMIT = DEFAULT_TIME_LIMIT
#: Generous: a loaded CI machine may be slow, but a runaway render takes seconds.
BOUND = 3 * LIMIT
BIG = 262_144

LIPSUM = "{{ lipsum(100000, html=False, min=99, max=100)|length }}"
WORDWRAP = "{% set s = 'a' * 262144 %}{{ s|wordwrap(1)|wordwrap(1)|wordwrap(1)|length }}"


def set_block(loops: int) -> str:
    return (
        "{% set s = 'a' * 262144 %}{% set x %}"
        f"{{% for i in range({loops}) %}}{{{{ s }}}}{{% endfor %}}"
        "{% endset %}{{ x|length }}"
    )


#: Passes the save check (the example's ticket_id is 123), then builds 262 MB per message.
DATA_DEPENDENT = "{% if ticket_id != 123 %}" + set_block(1000) + "{% endif %}{{ seller }} sold"
#: The same, spending time instead of memory: 2**60 macro calls.
DATA_DEPENDENT_SLOW = (
    "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}"
    "{% if ticket_id != 123 %}{{ f(60) }}{% endif %}{{ seller }} sold"
)
ISSUE_TEMPLATES = {
    "lipsum": (LIPSUM, "lipsum() is refused"),
    "wordwrap": (WORDWRAP, "wordwrap of 262144 characters"),
    "set x400": (set_block(400), "render built more than"),
    "set x4000": (set_block(4000), "render built more than"),
}


def timed(action: Callable[[], Any]) -> tuple[float, BaseException | None]:
    """CPU seconds of this thread spent in ``action`` (the render runs here): what a hostile
    template costs us, whatever else the machine is doing meanwhile."""
    started = time.thread_time()
    try:
        action()
    except Exception as exc:
        return time.thread_time() - started, exc
    return time.thread_time() - started, None


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer([])


def render(renderer: Renderer, source: str, **data: Any) -> str:
    return renderer.render_template(renderer.compile_source(source, "body"), "test", data)


# --- at save ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ISSUE_TEMPLATES))
def test_the_issue_templates_are_refused_at_save_within_the_limit(
    dispatcher: Dispatcher, case: str
) -> None:
    source, reason = ISSUE_TEMPLATES[case]
    elapsed, error = timed(
        lambda: dispatcher.templates.save("ticket_created", "in_app", "en", "body", source)
    )
    assert isinstance(error, TemplateLimitError), error
    assert error.reason.startswith("render limit: ") and reason in error.reason
    assert elapsed < BOUND
    assert dispatcher.templates.history("ticket_created", "in_app", "en", "body") == []


def test_a_set_block_cannot_build_its_loops_in_memory(renderer: Renderer) -> None:
    # Unbounded, the 4,000-loop block peaks at about a gigabyte; the bound is what one
    # render may build (4 x the output limit), here measured with tracemalloc.
    tracemalloc.start()
    try:
        with pytest.raises(TemplateLimitError, match="render built more than"):
            render(renderer, set_block(4000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 24 * 1024 * 1024


def test_the_data_dependent_template_passes_save_and_is_bounded_on_other_data(
    dispatcher: Dispatcher,
) -> None:
    saved = dispatcher.templates.save("ticket_created", "in_app", "en", "body", DATA_DEPENDENT)
    assert saved.version == 1
    example = dispatcher.catalog.get("ticket_created").example
    assert dispatcher.templates.preview("ticket_created", data=example)["body"] == "Luis sold"
    elapsed, error = timed(
        lambda: dispatcher.templates.preview("ticket_created", data={**example, "ticket_id": 7})
    )
    assert isinstance(error, TemplateLimitError)
    assert elapsed < BOUND


# --- in a worker ----------------------------------------------------------------------------


def _notify(d: Dispatcher, ticket_id: int) -> int:
    example = d.catalog.get("ticket_created").example
    return d.notify("ticket_created", to="u1", data={**example, "ticket_id": ticket_id}).id


def _final(d: Dispatcher, event_id: int) -> Delivery | None:
    with d.store.session() as s:
        row = s.scalar(
            select(Delivery)
            .join(Notification, Notification.id == Delivery.notification_id)
            .where(Notification.event_id == event_id, Delivery.channel == "in_app")
        )
        return row if row is not None and row.status.is_final else None


def test_a_worker_fails_the_costly_delivery_with_template_limit_and_goes_on(
    dispatcher: Dispatcher, start_worker: StartWorker
) -> None:
    worker = start_worker({"DISPATCHER_TEMPLATE_REFRESH_SECONDS": "0.5"})
    dispatcher.subscribers.upsert("u1")
    for version, source, reason in (
        (1, DATA_DEPENDENT, "render limit: render built more than 1048576 characters of text"),
        (2, DATA_DEPENDENT_SLOW, f"render limit: render took longer than {LIMIT:g}s"),
    ):
        saved = dispatcher.templates.save("ticket_created", "in_app", "en", "body", source)
        assert saved.version == version
        time.sleep(1.0)  # longer than the worker's refresh interval (0.5 s)
        inbox_before = len(dispatcher.inbox("u1"))
        event_id = _notify(dispatcher, 200 + version)
        costly = wait_for(lambda: _final(dispatcher, event_id))  # noqa: B023
        assert costly.status is DeliveryStatus.FAILED
        assert costly.reason == Reason.TEMPLATE_LIMIT == "template_limit"
        assert costly.detail == reason
        assert costly.attempts == 1  # permanent: no retry scheduled
        with dispatcher.store.session() as s:
            steps = s.scalars(select(DeliveryStep).where(DeliveryStep.delivery_id == costly.id))
            assert [(st.status, st.reason) for st in steps] == [
                (DeliveryStatus.FAILED, "template_limit")
            ]
        assert summarize(costly.status, costly.reason, costly.detail) == (
            f"failed: template_limit {reason}"
        )
        assert len(dispatcher.inbox("u1")) == inbox_before  # nothing half-written
        # The worker is still there, and delivers the next (ordinary) event.
        event_id = _notify(dispatcher, 123)
        healthy = wait_for(lambda: _final(dispatcher, event_id))  # noqa: B023
        assert healthy.status is DeliveryStatus.SENT
        inbox = dispatcher.inbox("u1")
        assert len(inbox) == inbox_before + 1 and inbox[0].body == "Luis sold"
        assert worker.process.poll() is None


# --- limits and settings ------------------------------------------------------------------


def test_limits_are_settings_with_a_default_well_under_a_second(tmp_path: Path) -> None:
    defaults = Settings()
    assert defaults.template_time_limit_seconds == LIMIT < 1
    assert defaults.template_output_max_chars == MAX_OUTPUT_CHARS == BIG
    configured = make_settings(
        f"sqlite:///{tmp_path / 'd.db'}",
        template_time_limit_seconds=0.1,
        template_output_max_chars=4096,
    )
    renderer = Dispatcher(configured).renderer
    assert (renderer.limits.seconds, renderer.limits.max_chars) == (0.1, 4096)
    with pytest.raises(TemplateLimitError, match="output exceeds 4096 characters"):
        render(renderer, "{% for i in range(100) %}{{ 'x' * 50 }}{% endfor %}")
    with pytest.raises(ConfigurationError, match="DISPATCHER_TEMPLATE_TIME_LIMIT_SECONDS"):
        Settings.from_env(template_time_limit_seconds=0)


def test_the_output_limit_stops_a_render_as_it_generates() -> None:
    patient = Renderer([], time_limit=30)  # the limit under test is the output's
    tracemalloc.start()
    try:
        elapsed, error = timed(
            lambda: render(patient, "{% for i in range(10000) %}{{ s }}{% endfor %}", s="x" * 999)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, TemplateLimitError)
    assert error.reason == f"render limit: output exceeds {MAX_OUTPUT_CHARS} characters"
    assert elapsed < BOUND
    assert peak < 8 * 1024 * 1024  # ten million characters were never built


REFUSED = [
    ("{{ lipsum() }}", "lipsum() is refused"),
    ("{{ 'x'.encode() }}", "encode() is refused"),
    ("{{ (1).to_bytes(1000000000, 'big') }}", "to_bytes() is refused"),
    ("{{ ('a' * 20000)|wordwrap(79) }}", "wordwrap of 20000 characters: it takes at most 16384"),
    ("{{ ('a ' * 9000)|urlize }}", "urlize of 18000 characters"),
    ("{{ 'abc'|trim('x' * 300) }}", "strip of 300 different characters: at most 256"),
    ("{{ 'abc'.strip('x' * 300) }}", "strip of 300 different characters"),
    ("{% for i in range(10**6) %}{% endfor %}", "range of 1000000 items exceeds 100000"),
    ("{{ 'x'.center(10**9) }}", "string width 1000000000 exceeds 1000"),
    ("{{ ('a' * 1000).replace('', 'bb') }}", "replace result of 3002 would exceed"),
    ("{{ [1, 2]|tojson(indent=100) }}", "tojson indent 100: at most 16"),
    ("{{ [1]|batch(10**9, 0)|list }}", "batch of 1000000000 with fill_with exceeds 10000"),
    ("{{ ('a' * 20000)|list }}", "list of a string of 20000 characters"),
    ("{{ ('{0}' * 1000).format('x' * 1000) }}", "formatted string of"),
    (
        "{% set s = 'x' * 100000 %}{{ ('%s' * 3) % (s, s, s) }}",
        "format arguments larger than 262144",
    ),
    ("{% set s = 'x' * 100000 %}{{ s ~ s ~ s }}", "concatenation of 300000 would exceed"),
    ("{{ (['x' * 1000] * 1000)|join }}", "repetition of 1006000 would exceed"),
    (
        "{% set ns = namespace(x=3) %}{% for i in range(20) %}{% set ns.x = ns.x * ns.x %}"
        "{% endfor %}",
        "product larger than 4096 bits",
    ),
    ("{% macro f(k) %}{{ f(k + 1) }}{% endmacro %}{{ f(0) }}", "calls nested deeper than 64"),
    ("{{ x }}" * 2001, "template too complex: 2002 syntax nodes, at most 2000"),
    ("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}", "template nested too deeply to compile"),
]


@pytest.mark.parametrize(("source", "reason"), REFUSED)
def test_costly_constructs_are_refused_with_a_precise_reason(source: str, reason: str) -> None:
    small = Renderer([], output_limit=1000) if "replace result" in reason else Renderer([])
    elapsed, error = timed(lambda: render(small, source, x=1))
    assert isinstance(error, TemplateLimitError), error
    assert error.reason.startswith("render limit: ") and reason in error.reason, error.reason
    assert elapsed < BOUND


def test_ordinary_templates_render_as_in_jinjas_own_sandbox(renderer: Renderer) -> None:
    source = (
        "{% set items = [{'n': 'a', 'p': 2}, {'n': 'b', 'p': 3}] %}"
        "{% for i in items|sort(attribute='p', reverse=true) %}{{ i.n|upper }}{% endfor %} "
        "{{ 'x' ~ 1 ~ 'y' }} {{ '%05.1f'|format(3.14159) }} {{ '{:>4}'.format(7) }} "
        "{{ (text|wordwrap(10)).splitlines()|length }} {{ range(3)|join(',') }} "
        "{{ 'a-b'.replace('-', '+') }} {{ {'k': 1}|tojson }} {{ (2 ** 10) * 3 }} "
        "{% set ns = namespace(s='') %}{% for i in range(3) %}{% set ns.s = ns.s ~ i %}"
        "{% endfor %}{{ ns.s }} {{ text|truncate(9) }} {{ [1, 2] + [3] }} {{ none }} "
        "{% macro m(x) %}<{{ x }}>{% endmacro %}{{ m(text|title) }} {{ items|map(attribute='n')"
        "|select('ne', 'a')|list }} {{ 1.5 }} {% filter upper %}{{ caller }}q{% endfilter %}"
    )
    plain = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    filters.install(plain)
    data = {"text": "one two three four five", "caller": "<c>"}
    expected = plain.from_string(source).render(data).strip()
    assert render(renderer, source, **data) == expected
    assert "BA x1y 003.1    7 3 0,1,2 a+b" in expected


# --- hostile combinations -------------------------------------------------------------------

SIZES = st.sampled_from([1, 10, 1000, 16_384, 100_000, BIG])
COUNTS = st.sampled_from([1, 3, 100, 4000, 100_000])
STEPS = st.lists(
    st.sampled_from(
        [
            "|wordwrap(1)",
            "|center(999)",
            "|indent(999, true)",
            "|replace('a', 'aaaa')",
            "|list|join('--')",
            "|e",
            "|urlencode",
            "|title",
            "|striptags",
            "|tojson",
            "|pprint",
            "|trim('ab')",
            " * 3",
            " ~ s",
        ]
    ),
    min_size=1,
    max_size=4,
)
SHAPES = st.sampled_from(
    [
        "{{ EXPR }}",
        "{% for i in range(N) %}{{ EXPR }}{% endfor %}",
        "{% set x %}{% for i in range(N) %}{{ EXPR }}{% endfor %}{% endset %}{{ x|length }}",
        "{% macro m(k) %}{{ EXPR }}{% if k %}{{ m(k - 1) }}{% endif %}{% endmacro %}{{ m(N) }}",
        "{% set ns = namespace(v=s) %}{% for i in range(N) %}{% set ns.v = ns.v ~ (EXPR) %}"
        "{% endfor %}{{ ns.v|length }}",
        "{% if ticket_id != 123 %}{% for i in range(N) %}{{ (EXPR)|length }}{% endfor %}"
        "{% endif %}",
    ]
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(size=SIZES, count=COUNTS, steps=STEPS, shape=SHAPES, data_string=st.booleans())
def test_hostile_combinations_end_within_the_limits(
    renderer: Renderer, size: int, count: int, steps: list[str], shape: str, data_string: bool
) -> None:
    expr = "s"
    for step in steps:
        expr = f"({expr}){step}"
    source = shape.replace("EXPR", expr).replace("N", str(count))
    if not data_string:
        source = f"{{% set s = 'a b<' * {size // 4 or 1} %}}" + source
    context = {"s": "a b<" * (size // 4 or 1), "ticket_id": 7}
    tracemalloc.start()
    try:
        started = time.thread_time()  # CPU, not wall: see timed()
        try:
            out = render(renderer, source, **context)
            event("rendered")
        except TemplateLimitError as exc:
            out = ""
            event(exc.reason.split(" of ")[0].split(" than ")[0][:40])
        except TemplateError:  # a type error and the like: fine, as long as it is quick
            out = ""
            event("other template error")
        elapsed = time.thread_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(out) <= MAX_OUTPUT_CHARS
    # tracemalloc makes Python code about twice as slow; the bound allows for it.
    assert elapsed < 2 * BOUND, (source, elapsed)
    assert peak < 64 * 1024 * 1024, (source, peak)
