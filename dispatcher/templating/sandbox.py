"""The Jinja environment templates run in: an immutable sandbox with limits.

Operators are not trusted with Python, so templates run in Jinja's
``ImmutableSandboxedEnvironment`` (no ``__class__``, no ``|attr`` or ``.format``
escapes, no mutation of lists and dicts) with ``StrictUndefined``. On top of it this
module bounds what one render may cost.

Why a cooperative budget rather than a timer: ``signal.alarm`` only works in a main
thread (Celery's thread pools, our solo test worker and the gateway run renders
elsewhere) and fights with Celery's own time-limit signals in prefork children;
``sys.settrace`` slows every render several times and breaks coverage and debuggers;
a watchdog thread cannot stop the thread it watches; a subprocess per render costs far
more than the render. Instead the compiled template checks a per-render budget (held in
a :class:`~contextvars.ContextVar`, so threads and prefork children each have their own)
at every loop iteration (every ``for`` iterable is wrapped in a guard filter at parse
time), every call (macros, methods, ``loop()``) and every output chunk. One primitive
operation cannot be interrupted, so those that could be huge in one step are bounded
before they run:
``*``, ``+``, ``**`` and ``%`` on strings, lists and numbers, printf/``format`` widths,
``center``, ``indent``, ``replace``, ``namespace`` attributes and call results.

Resource limits at the process level (``--max-memory-per-child``) remain good practice;
Jinja's own documentation says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_eval_context
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

#: Largest string or list a template may build or output, in characters or items.
MAX_OUTPUT_CHARS = 256 * 1024
#: Loop iterations one render may run, over all loops.
MAX_LOOP_ITERATIONS = 100_000
#: Widest printf / format field or ``center`` / ``indent`` width.
MAX_FIELD_WIDTH = 1000
#: Largest integer a template may compute with ``**``, in bits.
MAX_POWER_BITS = 4096

# "%5000d", "%*d", "%.5000f"; "{:5000}", "{:{w}}".
_WIDE_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{4,})|%[-#0 +]*\d*\.(?:\*|\d{4,})")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\d{4,}|\{)")


class RenderLimitError(SecurityError):
    """Raised inside a render that would exceed its time, size or iteration budget."""


@dataclass
class RenderBudget:
    """What is left for one render: a deadline on the monotonic clock and loop iterations."""

    deadline: float
    seconds: float
    iterations: int = MAX_LOOP_ITERATIONS

    def check_time(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"render took longer than {self.seconds:g}s")

    def spend_iteration(self) -> None:
        self.iterations -= 1
        if self.iterations < 0:
            raise RenderLimitError(f"more than {MAX_LOOP_ITERATIONS} loop iterations")
        self.check_time()


#: The budget of the render running in this thread / task; None outside a render.
current_budget: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


def _check_time() -> None:
    budget = current_budget.get()
    if budget is not None:
        budget.check_time()


#: Name of the filter wrapped around every loop's iterable.
LOOP_GUARD = "_loop_guard"


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


def _too_large(what: str, size: int) -> RenderLimitError:
    return RenderLimitError(f"{what} of {size} would exceed {MAX_OUTPUT_CHARS} characters")


def check_format_string(fmt: str) -> None:
    """Refuse printf and ``str.format`` fields wide enough to build huge strings."""
    if _WIDE_PRINTF.search(fmt) or _WIDE_FORMAT.search(fmt):
        raise RenderLimitError(f"format field wider than {MAX_FIELD_WIDTH} characters")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    sized = (str, list, tuple)
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if (
                isinstance(seq, sized)
                and isinstance(times, int)
                and len(seq) * times > MAX_OUTPUT_CHARS
            ):
                raise _too_large("repetition", len(seq) * times)
    elif operator == "+":
        if (
            isinstance(left, sized)
            and isinstance(right, sized)
            and len(left) + len(right) > MAX_OUTPUT_CHARS
        ):
            raise _too_large("concatenation", len(left) + len(right))
    elif operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and max(abs(left).bit_length(), 1) * right > MAX_POWER_BITS
        ):
            raise RenderLimitError(f"power result larger than {MAX_POWER_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        check_format_string(left)


class BoundedNamespace(Namespace):
    """``namespace()`` whose attributes cannot hold oversized strings or lists."""

    def __setitem__(self, name: str, value: Any) -> None:
        if isinstance(value, str | list | tuple) and len(value) > MAX_OUTPUT_CHARS:
            raise _too_large("namespace value", len(value))
        super().__setitem__(name, value)


def _width_checked(filter_func: Callable[..., Any], name: str) -> Callable[..., Any]:
    def guarded(value: Any, width: Any = None, *args: Any, **kwargs: Any) -> Any:
        w = width
        if isinstance(w, int) and w > MAX_FIELD_WIDTH:
            raise RenderLimitError(f"{name} width {w} exceeds {MAX_FIELD_WIDTH}")
        if isinstance(w, str) and len(w) > MAX_FIELD_WIDTH:
            raise RenderLimitError(f"{name} width exceeds {MAX_FIELD_WIDTH} characters")
        if width is None:
            return filter_func(value, *args, **kwargs)
        return filter_func(value, width, *args, **kwargs)

    return guarded


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: int | None = None) -> Any:
    text, o, n = str(s), str(old), str(new)
    hits = text.count(o) if o else len(text) + 1
    if count is not None:
        hits = min(hits, max(count, 0))
    size = len(text) + hits * (len(n) - len(o))
    if size > MAX_OUTPUT_CHARS:
        raise _too_large("replace result", size)
    return FILTERS["replace"](eval_ctx, s, old, new, count)


def _format(value: Any, *args: Any, **kwargs: Any) -> Any:
    check_format_string(str(value))
    return FILTERS["format"](value, *args, **kwargs)


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with a per-render budget checked cooperatively."""

    intercepted_binops = frozenset({"*", "+", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["namespace"] = BoundedNamespace
        self.filters["center"] = _width_checked(FILTERS["center"], "center")
        self.filters["indent"] = _width_checked(FILTERS["indent"], "indent")
        self.filters["replace"] = _replace
        self.filters["format"] = _format
        self.filters[LOOP_GUARD] = _GuardedIterable

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        # Every template is parsed here (files, database versions, from_string), so every
        # ``for`` loop of every template iterates through the budget.
        tree = super()._parse(source, name, filename)
        for loop in tree.find_all(nodes.For):
            if not (isinstance(loop.iter, nodes.Filter) and loop.iter.name == LOOP_GUARD):
                loop.iter = nodes.Filter(
                    loop.iter, LOOP_GUARD, [], [], None, None, lineno=loop.lineno
                )
        return tree

    def call(
        __self,  # Jinja's own signature, so keyword arguments named self pass through
        __context: Context,
        __obj: Any,
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        _check_time()
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, str) and len(result) > MAX_OUTPUT_CHARS:
            raise _too_large("call result", len(result))
        return result

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is not None:
            check_format_string(str(value.__self__))
        return wrapped
