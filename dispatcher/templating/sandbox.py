"""The Jinja environment templates run in: an immutable sandbox with limits.

Operators are not trusted with Python, so templates run in Jinja's
``ImmutableSandboxedEnvironment`` (no ``__class__``, no ``|attr`` or ``.format``
escapes, no mutation of lists and dicts) with ``StrictUndefined``. On top of it this
module bounds what one render may cost: its time, the size of any value and of its
output, and the text it builds in all (:mod:`dispatcher.templating.limits`).

Why a cooperative budget rather than a timer: ``signal.alarm`` only works in a main
thread (Celery's thread pools, our solo test worker and the gateway run renders
elsewhere) and fights with Celery's own time-limit signals in prefork children;
``sys.settrace`` slows every render several times and breaks coverage and debuggers;
a watchdog thread cannot stop the thread it watches; a subprocess per render costs far
more than the render. Instead the compiled template checks the deadline wherever work
can repeat: every loop iteration (every ``for`` iterable is wrapped in a guard filter at
parse time), every call (macros, methods, ``loop()``, ``caller()``), every filter and
every item a lazy filter yields; code between those points is straight-line and bounded
by the template's size. Every printed value and every piece of literal text is charged
to the render's text budget, including what goes into ``{% set %}`` blocks and macro
buffers (a code generator routes them through :meth:`GuardedEnvironment.emit_literal`
and the ``finalize`` hook). One primitive operation cannot be interrupted, so those that
could be large in one step are measured or estimated before they run: ``*``, ``+``,
``**`` and ``%``, ``~``, printf/``format`` widths, every filter's input (and the costly
filters' results, :mod:`dispatcher.templating.filter_bounds`), string methods, call
arguments and results, ``namespace`` attributes, ``range``. ``lipsum()`` is refused.

Templates are compiled without Jinja's optimizer: constant folding would run filters at
compile time, outside any budget (``{{ 'x'|wordwrap(1) }}`` on a long literal, say).

Resource limits at the process level (``--max-memory-per-child``) remain good practice;
Jinja's own documentation says so.
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from typing import Any

import jinja2
from jinja2 import Undefined, nodes, pass_eval_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.nodes import EvalContext
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

from dispatcher.templating.call_bounds import bounded_range, check_call, refused_lipsum
from dispatcher.templating.filter_bounds import GuardedFilters, checked_result
from dispatcher.templating.limits import (
    DEFAULT_LIMITS,
    MAX_CALL_DEPTH,
    MAX_FIELD_WIDTH,
    MAX_LOOP_ITERATIONS,
    MAX_OUTPUT_CHARS,
    RenderBudget,
    RenderLimitError,
    RenderLimits,
    active_limits,
    check_binop,
    check_format_string,
    check_str_format,
    current_budget,
    measure,
    too_large,
    uncounted,
)

__all__ = [
    "LOOP_GUARD",
    "MAX_FIELD_WIDTH",
    "MAX_LOOP_ITERATIONS",
    "MAX_OUTPUT_CHARS",
    "BoundedNamespace",
    "GuardedEnvironment",
    "RenderBudget",
    "RenderLimitError",
    "RenderLimits",
    "current_budget",
]

#: Name of the filter wrapped around every loop's iterable.
LOOP_GUARD = "_loop_guard"
#: Most syntax nodes (tags, expressions, text) one template may have; the built-in
#: templates have at most 60.
MAX_TEMPLATE_NODES = 2000


class _GuardedIterable:
    """An iterable that spends the render budget per item; keeps ``len`` for ``loop.length``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Iterable[Any]) -> None:
        self._inner = inner

    def __iter__(self) -> Iterator[Any]:
        budget = current_budget.get()
        if budget is None:
            yield from self._inner
            return
        for item in self._inner:
            budget.spend_iteration()
            yield item

    def __len__(self) -> int:
        return len(self._inner)  # type: ignore[arg-type]


class BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot hold oversized strings or lists."""

    def __init__(*args: Any, **kwargs: Any) -> None:  # Namespace's own signature
        super(BoundedNamespace, args[0]).__init__(*args[1:], **kwargs)
        limits = active_limits()
        for value in args[0]._Namespace__attrs.values():
            measure(value, "namespace value", limits)

    def __setitem__(self, name: str, value: Any) -> None:
        limits = active_limits()
        if isinstance(value, str) and len(value) > limits.max_chars:
            raise too_large("namespace value", len(value), limits)
        measure(value, "namespace value", limits)
        super().__setitem__(name, value)


@pass_eval_context
def _finalize(eval_ctx: EvalContext, value: Any) -> Any:
    """Every ``{{ value }}`` passes here before it is written to an output or a buffer:
    measured, turned into text here (so its size is known) and charged."""
    budget = current_budget.get()
    limits = DEFAULT_LIMITS if budget is None else budget.limits
    kind = type(value)
    if kind is str or isinstance(value, str):
        size = len(value)
    elif kind is int:
        value = str(value)
        size = len(value)
    elif isinstance(value, Undefined):
        return value  # StrictUndefined raises, naming the variable, when written
    else:
        measure(value, "printed value", limits)
        if hasattr(value, "__html__"):
            return value
        value = str(value)
        size = len(value)
    if size > limits.max_chars:
        raise too_large("printed value", size, limits)
    if budget is not None:
        budget.built += size  # budget.charge, inlined: this runs for every {{ value }}
        if budget.built > budget.max_built:
            budget.charge(0)
    return value


class GuardedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with literal text and ``~`` going through the budget."""

    def _output_const_repr(self, group: Iterable[Any]) -> str:
        # Literal text is written by reference, so a loop inside a {% set %} block could
        # otherwise pile up gigabytes for one join; charging it bounds every buffer.
        return f"environment.emit_literal({super()._output_const_repr(group)})"

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:  # as Jinja's own visit_Concat
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        elif frame.eval_ctx.autoescape:
            join = "markup_join"
        else:
            join = "str_join"
        self.write(f"environment.join_values({join}, (")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a per-render budget checked cooperatively."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})
    code_generator_class = GuardedCodeGenerator

    def __init__(self, **options: Any) -> None:
        options["optimized"] = False  # no filter may run at compile time, outside a budget
        options["finalize"] = _finalize
        super().__init__(**options)
        self.filters = GuardedFilters(self.filters)
        self.filters.install_unguarded(LOOP_GUARD, _GuardedIterable)
        self.globals["namespace"] = BoundedNamespace
        self.globals["range"] = bounded_range
        self.globals["lipsum"] = refused_lipsum

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every template is parsed here (files, database versions, from_string), so every
        # ``for`` loop of every template iterates through the budget.
        tree = super()._parse(source, name, filename)
        # Generating and compiling Python for a template costs about 50 µs per node,
        # outside any render budget: 9,000 tiny tags fit in 64 KiB and take half a second.
        count = sum(1 for _ in tree.find_all(nodes.Node))
        if count > MAX_TEMPLATE_NODES:
            raise RenderLimitError(
                f"template too complex: {count} syntax nodes, at most {MAX_TEMPLATE_NODES}"
            )
        for loop in tree.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_GUARD):
                loop.iter = nodes.Filter(
                    loop.iter, LOOP_GUARD, [], [], None, None, lineno=loop.lineno
                )
        return tree

    def _load_template(
        self, name: str, globals: MutableMapping[str, Any] | None
    ) -> jinja2.Template:
        # A layout or partial is compiled the first time a render extends or includes it,
        # once per process; its cost is bounded by its size and node count, not charged
        # to the message that happened to need it first. A template already compiled is
        # taken from the cache without timing it (as Jinja's own method does): reading
        # the thread's CPU clock is a system call, and this runs for every part of every
        # message.
        if self.cache is not None and self.loader is not None:
            template = self.cache.get((weakref.ref(self.loader), name))
            if template is not None and (not self.auto_reload or template.is_up_to_date):
                if globals:
                    template.globals.update(globals)
                return template
        with uncounted():
            return super()._load_template(name, globals)

    def emit_literal(self, text: str) -> str:
        """Literal template text about to be written: charged to the render."""
        budget = current_budget.get()
        if budget is not None:
            budget.built += len(text)  # budget.charge, inlined: this runs for every text
            if budget.built > budget.max_built:
                budget.charge(0)
        return text

    def join_values(self, join: Callable[[Iterable[Any]], str], values: tuple[Any, ...]) -> str:
        """``a ~ b``: measured before the strings are built."""
        limits = active_limits()
        size = sum(measure(v, "concatenated value", limits).chars for v in values)
        if size > limits.max_chars:
            raise too_large("concatenation", size, limits)
        budget = current_budget.get()
        if budget is not None:
            budget.charge(size)
        return join(values)

    def call(
        __self,  # Jinja's own signature, so keyword arguments named self pass through
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        budget = current_budget.get()
        limits = DEFAULT_LIMITS if budget is None else budget.limits
        if budget is None:
            args = check_call(__obj, args, kwargs, limits)
            return checked_result(
                "call", super().call(__context, __obj, *args, **kwargs), args, limits
            )
        budget.check_time()
        args = check_call(__obj, args, kwargs, limits)
        budget.depth += 1
        try:
            if budget.depth > MAX_CALL_DEPTH:
                raise RenderLimitError(f"calls nested deeper than {MAX_CALL_DEPTH} levels")
            result = super().call(__context, __obj, *args, **kwargs)
        finally:
            budget.depth -= 1
        return checked_result("call", result, args, limits)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, str) and operator in ("*", "+", "%"):
            budget = current_budget.get()
            if budget is not None:
                budget.charge(len(result))
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = str(value.__self__)
        check_format_string(fmt)
        format_map = value.__name__ == "format_map"
        inner = wrapped

        @functools.wraps(inner)
        def bounded(*args: Any, **kwargs: Any) -> str:
            if format_map and len(args) == 1 and isinstance(args[0], Mapping):
                check_str_format(fmt, (), args[0])
            else:
                check_str_format(fmt, args, kwargs)
            return inner(*args, **kwargs)

        return bounded
