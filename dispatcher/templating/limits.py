"""What one render may cost, and the measurements that keep it there.

A render has a :class:`RenderBudget`: a deadline, a number of loop iterations, and a
count of the characters it has built (every piece of text written to an output or to a
``{% set %}``/macro buffer, and every new string an operation returned). The budget of
the running render lives in a :class:`~contextvars.ContextVar`, so threads and prefork
children each have their own; outside a render (a template used directly) the size
limits still hold, with their defaults, and the clock does not run.

The clock is the rendering thread's CPU time (:data:`render_clock`), not the wall: a
hostile template is stopped after its own quarter second of work, and a template that
takes 20 ms is not failed for good because the machine was busy, the process was
swapped out or a collector paused it while it rendered (seen: an in-app delivery failed
with "render took longer than 0.25s" on a 2-core machine at load 16).

The deadline is checked cooperatively (see :mod:`dispatcher.templating.sandbox` for
why), so no single step may run long: :func:`measure` sizes a value before it is
turned into text or handed to a filter, and the ``check_*`` functions estimate what an
operation would build before it runs.
"""

from __future__ import annotations

import re
import string
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jinja2 import Undefined
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

#: Largest output of one part, and largest string or list (as text) one value may be.
MAX_OUTPUT_CHARS = 256 * 1024
#: Text one render may build in all (outputs, buffers, results), as a multiple of the
#: output limit: a layout, a macro's result printed twice and a few filters fit in it.
BUILT_FACTOR = 4
#: Most items, counted through nested lists and mappings, a filter or method may take
#: or an operation may build. Sorting or mapping 10,000 items takes a few milliseconds.
MAX_ITEMS = 10_000
#: Loop iterations one render may run, over all loops; also the longest ``range``.
MAX_LOOP_ITERATIONS = 100_000
#: Deepest nesting of macro calls, ``caller()`` and recursive loops; Python's own
#: recursion limit sits a few hundred levels further.
MAX_CALL_DEPTH = 64
#: Widest printf / format field or ``center`` / ``indent`` width.
MAX_FIELD_WIDTH = 1000
#: Largest integer a template may compute with ``**`` or ``*``, in bits.
MAX_POWER_BITS = 4096
#: Default time one part may take to render, in CPU seconds of the rendering thread.
DEFAULT_TIME_LIMIT = 0.25
#: The clock of a render's deadline: CPU seconds of the calling thread (a render runs in
#: one thread from start to end, and nothing else runs in that thread meanwhile).
render_clock = time.thread_time


def wall_clock(_clock: Callable[[], float] = time.perf_counter) -> float:
    """A cheap wall clock. A thread's CPU time never runs ahead of the wall, so the
    deadline asks the CPU clock (a system call, about 3 µs here, dozens of times per
    message) only once this one says the render could be late. The real clock is held
    as a default argument, where freezegun does not replace it: a frozen wall would
    switch the deadline off."""
    return _clock()


# "%5000d", "%*d", "%.5000f"; "{:5000}", "{:{w}}".
_WIDE_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d{4,})|%[-#0 +]*\d*\.(?:\*|\d{4,})")
_WIDE_FORMAT = re.compile(r"\{[^{}]*:[^{}]*(?:\d{4,}|\{)")
# One printf field: optional mapping key, flags, width, precision, conversion.
_PRINTF_FIELD = re.compile(r"%(?:\(([^)]*)\))?[-#0 +]*(\d*)(?:\.(\d*))?[hlL]?(.)", re.DOTALL)
_DIGITS = re.compile(r"\d+")
_FIELD_ARGUMENT = re.compile(r"[^.\[]*")


class RenderLimitError(SecurityError):
    """Raised inside a render that would exceed its time, size or iteration budget."""


@dataclass(frozen=True)
class RenderLimits:
    """The limits of one render; :class:`~dispatcher.templating.renderer.Renderer` holds one."""

    #: Seconds one part may take.
    seconds: float = DEFAULT_TIME_LIMIT
    #: Characters of output, and of any one value.
    max_chars: int = MAX_OUTPUT_CHARS
    #: Items one filter, method or operation may take or build.
    max_items: int = MAX_ITEMS
    #: Loop iterations over the whole render.
    max_iterations: int = MAX_LOOP_ITERATIONS

    @property
    def max_built_chars(self) -> int:
        """Characters the render may build in all."""
        return BUILT_FACTOR * self.max_chars


DEFAULT_LIMITS = RenderLimits()


@dataclass
class RenderBudget:
    """What is left for one render."""

    limits: RenderLimits
    deadline: float
    iterations: int
    #: Characters of text built so far, and the most allowed (hot paths compare inline).
    built: int = 0
    max_built: int = 0
    depth: int = 0
    started: float = field(default_factory=render_clock)
    #: The same deadline on :data:`wall_clock`, which the CPU clock cannot beat.
    wall_deadline: float = float("inf")

    @classmethod
    def start(cls, limits: RenderLimits) -> RenderBudget:
        """A fresh budget whose clock starts now."""
        now = render_clock()
        return cls(
            limits,
            now + limits.seconds,
            limits.max_iterations,
            max_built=limits.max_built_chars,
            started=now,
            wall_deadline=wall_clock() + limits.seconds,
        )

    def check_time(self) -> None:
        if wall_clock() > self.wall_deadline and render_clock() > self.deadline:
            raise RenderLimitError(f"render took longer than {self.limits.seconds:g}s")

    def spend_iteration(self) -> None:
        self.iterations -= 1
        if self.iterations < 0:
            raise RenderLimitError(f"more than {self.limits.max_iterations} loop iterations")
        self.check_time()

    def charge(self, chars: int) -> None:
        """Count ``chars`` characters of new text against the render."""
        self.built += chars
        if self.built > self.max_built:
            raise RenderLimitError(
                f"render built more than {self.limits.max_built_chars} characters of text"
            )


#: The budget of the render running in this thread / task; None outside a render.
current_budget: ContextVar[RenderBudget | None] = ContextVar("render_budget", default=None)


def active_limits() -> RenderLimits:
    """The limits of the running render, or the defaults outside one."""
    budget = current_budget.get()
    return DEFAULT_LIMITS if budget is None else budget.limits


def check_time() -> None:
    """Stop the running render if it is past its deadline."""
    budget = current_budget.get()
    if budget is not None:
        budget.check_time()


def charge(chars: int) -> None:
    """Count new text against the running render (nothing outside a render)."""
    budget = current_budget.get()
    if budget is not None:
        budget.charge(chars)


@contextmanager
def uncounted() -> Iterator[None]:
    """Time spent inside does not count against the running render.

    For one-off loads a render may trigger but should not pay for: a locale's data the
    first time a process formats money in it, a layout compiled the first time a part
    extends it. Their cost is bounded elsewhere (a template's size and node count) and
    paid once per process, not per message.
    """
    budget = current_budget.get()
    started, wall_started = render_clock(), wall_clock()
    try:
        yield
    finally:
        if budget is not None:
            budget.deadline += render_clock() - started
            budget.wall_deadline += wall_clock() - wall_started


def too_large(what: str, size: int, limits: RenderLimits) -> RenderLimitError:
    return RenderLimitError(f"{what} of {size} would exceed {limits.max_chars} characters")


class Size(NamedTuple):
    """About how long ``str(value)`` is, how many items it holds, and how deeply nested."""

    chars: int
    items: int
    depth: int


_SCALAR = Size(5, 0, 0)


def measure(value: Any, what: str, limits: RenderLimits) -> Size:
    """Size ``value`` without converting it, refusing it past the limits.

    The walk stops as soon as a limit is passed, so it costs at most ``max_items`` steps.
    Strings count their length; containers add the brackets, quotes and separators their
    ``str`` would show. Iterators count nothing here: they are counted as they are consumed.

    Raises:
        RenderLimitError: ``value`` is larger than ``limits`` allow; names ``what``.
    """
    kind = type(value)
    if kind is str or isinstance(value, str):
        if len(value) > limits.max_chars:
            raise too_large(what, len(value), limits)
        return Size(len(value), 0, 0)
    if kind is int:  # the common scalars, without the walk
        return Size(value.bit_length() // 3 + 1, 0, 0)
    if value is None or kind is float or kind is bool:
        return _SCALAR
    chars = items = depth = 0
    # No "seen" set: a list holding the same sublist twice prints it twice, so shared
    # parts count each time; a namespace holding itself stops at the item limit.
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, level = stack.pop()
        if isinstance(v, str | bytes | bytearray):
            chars += len(v)
        elif v is None or isinstance(v, bool | float | Undefined):
            chars += 5
        elif isinstance(v, int):
            chars += v.bit_length() // 3 + 1  # decimal digits, rounded up
        elif isinstance(v, range):
            items += len(v)
            chars += 2 + len(v) * (len(str(v[-1])) + 2 if v else 0)
        elif isinstance(v, list | tuple | set | frozenset | Mapping | Namespace):
            if isinstance(v, Namespace):
                v = v._Namespace__attrs  # Namespace lets this one name through
            items += len(v)
            chars += 2 + 4 * len(v)
            depth = max(depth, level + 1)
            if items > limits.max_items:
                raise RenderLimitError(f"{what} of more than {limits.max_items} items")
            if isinstance(v, Mapping):
                for key, item in v.items():
                    stack.append((key, level + 1))
                    stack.append((item, level + 1))
            else:
                stack.extend((item, level + 1) for item in v)
        else:  # dates, macros, loop contexts, iterators: short texts
            chars += 32
        if chars > limits.max_chars:
            raise RenderLimitError(f"{what} larger than {limits.max_chars} characters")
        if items > limits.max_items:
            raise RenderLimitError(f"{what} of more than {limits.max_items} items")
    return Size(chars, items, depth)


def check_format_string(fmt: str) -> None:
    """Refuse printf and ``str.format`` fields wide enough to build huge strings."""
    if _WIDE_PRINTF.search(fmt) or _WIDE_FORMAT.search(fmt):
        raise RenderLimitError(f"format field wider than {MAX_FIELD_WIDTH} characters")


def check_printf(fmt: str, args: Any, limits: RenderLimits) -> None:
    """Refuse ``fmt % args`` (and the ``format`` filter) if it would build too much.

    Each field adds its width and precision and the text of its argument: the named one
    for ``%(name)s`` (which may repeat), else all positional arguments once.
    """
    check_format_string(fmt)
    named = isinstance(args, Mapping)
    size = len(fmt) + (0 if named else measure(args, "format arguments", limits).chars)
    for conversion in _PRINTF_FIELD.finditer(fmt):
        key, width, precision, _ = conversion.groups()
        size += int(width or 0) + int(precision or 0)
        if named and key:
            size += measure(args.get(key), "format argument", limits).chars
        if size > limits.max_chars:  # stop at once: a format may have 100,000 fields
            break
    if size > limits.max_chars:
        raise too_large("formatted string", size, limits)


def check_str_format(fmt: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
    """Refuse ``fmt.format(*args, **kwargs)`` if it would build too much.

    A field may name any argument, any number of times, so each field counts the
    largest argument (or the one it names, when it names one directly).
    """
    limits = active_limits()
    check_format_string(fmt)
    sizes: dict[str | int, int] = {
        i: measure(a, "format argument", limits).chars for i, a in enumerate(args)
    }
    sizes.update((k, measure(v, "format argument", limits).chars) for k, v in kwargs.items())
    largest = max(sizes.values(), default=0)
    size = auto = 0
    try:
        fields = string.Formatter().parse(fmt)
        for literal, name, spec, _ in fields:
            size += len(literal)
            if name is None:
                continue
            # "{0.city}" or "{user[name]}" shows part of an argument: at most all of it.
            first = _FIELD_ARGUMENT.match(name).group()  # type: ignore[union-attr]
            key: str | int = first
            if first == "":
                key, auto = auto, auto + 1
            elif first.isdigit():
                key = int(first)
            size += sizes.get(key, largest)
            size += max((int(d) for d in _DIGITS.findall(spec or "")), default=0)
            if size > limits.max_chars:  # stop at once: a format may have 80,000 fields
                break
    except ValueError:
        return  # str.format raises the same error with a clearer message
    if size > limits.max_chars:
        raise too_large("formatted string", size, limits)


_SIZED = (str, bytes, bytearray, list, tuple)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too large, before computing it."""
    limits = active_limits()
    if operator == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and isinstance(times, int) and times > 0:
                if isinstance(seq, str | bytes | bytearray):
                    if len(seq) * times > limits.max_chars:
                        raise too_large("repetition", len(seq) * times, limits)
                    return
                if len(seq) * times > limits.max_items:
                    raise RenderLimitError(
                        f"repetition of {len(seq) * times} items would exceed "
                        f"{limits.max_items} items"
                    )
                size = measure(seq, "repeated list", limits).chars * times
                if size > limits.max_chars:
                    raise too_large("repetition", size, limits)
                return
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and left.bit_length() + right.bit_length() > MAX_POWER_BITS
        ):
            raise RenderLimitError(f"product larger than {MAX_POWER_BITS} bits")
    elif operator == "+":
        if isinstance(left, _SIZED) and isinstance(right, _SIZED):
            if not isinstance(left, list | tuple) and not isinstance(right, list | tuple):
                size = len(left) + len(right)
            else:
                if len(left) + len(right) > limits.max_items:
                    raise RenderLimitError(
                        f"concatenation of {len(left) + len(right)} items would exceed "
                        f"{limits.max_items} items"
                    )
                size = (
                    measure(left, "concatenated list", limits).chars
                    + measure(right, "concatenated list", limits).chars
                )
            if size > limits.max_chars:
                raise too_large("concatenation", size, limits)
    elif operator == "**":
        if (
            isinstance(left, int)
            and isinstance(right, int)
            and right > 0
            and max(abs(left).bit_length(), 1) * right > MAX_POWER_BITS
        ):
            raise RenderLimitError(f"power result larger than {MAX_POWER_BITS} bits")
    elif operator == "%" and isinstance(left, str):
        check_printf(left, right, limits)
