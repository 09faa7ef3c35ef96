"""Filters, method calls and globals behind the render budget.

Every filter of a guarded environment is wrapped as it is installed
(:class:`GuardedFilters`): it checks the deadline, collects an iterator input item by
item, refuses inputs larger than the limits (except the filters that cost the same
whatever their input: ``length``, ``count``, ``first``, ``last``, ``default``, ``attr``,
``random``) and checks what it returns. Filters that can build far more than they take,
or work in Python per character, are bounded before they run:

``center``, ``indent``
    width at most 1000 (and the indented text within the output limit).
``replace``, ``format``, ``join``
    the result within the output limit; ``format`` field widths below 1000.
``wordwrap``
    text of at most 16,384 characters: :mod:`textwrap` works in Python per chunk, so
    262,144 characters at width 1 take more than a second in one step.
``urlize``
    text of at most 16,384 characters (a regular expression per word).
``urlencode``
    the encoded text (three characters per UTF-8 byte) within the output limit.
``tojson``
    ``indent`` at most 16, and the indented text within the output limit.
``batch``
    with ``fill_with``, at most 10,000 per batch (the padding is built in one step).
``trim`` (and ``strip``)
    at most 256 characters to remove: each character of the text is looked up among
    them, so 131,072 of each take a second.
``list``, ``sort``, ``unique``, ``map``, ``select``, ``join``, ... on a string
    at most 10,000 characters: each character becomes an item.

Method calls and globals are bounded in :mod:`dispatcher.templating.call_bounds`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sized
from typing import Any

from jinja2.utils import _PassArg

from dispatcher.templating.limits import (
    DEFAULT_LIMITS,
    MAX_FIELD_WIDTH,
    RenderLimitError,
    RenderLimits,
    charge,
    check_printf,
    current_budget,
    measure,
    too_large,
)

#: Longest text ``wordwrap`` and ``urlize`` take.
MAX_WORDWRAP_CHARS = 16 * 1024
#: Largest ``tojson`` indent.
MAX_JSON_INDENT = 16
#: Most characters ``trim`` and ``strip`` may remove: each character of the text is
#: looked up among them, so 131,072 of each take a second.
MAX_STRIP_CHARS = 256

#: Filters that cost the same whatever their input: not measured.
_CONSTANT_TIME = frozenset({"length", "count", "first", "last", "default", "d", "attr", "random"})
#: Filters that turn a string into one item per character.
_PER_ITEM = frozenset(
    {
        "list",
        "sort",
        "unique",
        "batch",
        "slice",
        "map",
        "select",
        "reject",
        "selectattr",
        "rejectattr",
        "groupby",
        "min",
        "max",
        "sum",
        "join",
    }
)


def collect(values: Iterator[Any], what: str, limits: RenderLimits) -> list[Any]:
    """Consume an iterator into a list, item by item within the limits and the deadline."""
    budget = current_budget.get()
    items: list[Any] = []
    chars = 0
    for item in values:
        if budget is not None:
            budget.check_time()
        items.append(item)
        if len(items) > limits.max_items:
            raise RenderLimitError(f"{what} of more than {limits.max_items} items")
        chars += measure(item, what, limits).chars
        if chars > limits.max_chars:
            raise RenderLimitError(f"{what} larger than {limits.max_chars} characters")
    return items


class CountedIterator(Iterator[Any]):
    """A lazy filter result (``map``, ``select``, ``slice``...) that stops at the item
    limit and checks the deadline per item."""

    __slots__ = ("_inner", "_left", "_limits", "_what")

    def __init__(self, inner: Iterator[Any], what: str, limits: RenderLimits) -> None:
        self._inner = inner
        self._what = what
        self._limits = limits
        self._left = limits.max_items

    def __next__(self) -> Any:
        budget = current_budget.get()
        if budget is not None:
            budget.check_time()
        item = next(self._inner)
        self._left -= 1
        if self._left < 0:
            raise RenderLimitError(f"{self._what} of more than {self._limits.max_items} items")
        return item


def checked_result(what: str, result: Any, inputs: tuple[Any, ...], limits: RenderLimits) -> Any:
    """``result`` if it is within the limits; new text is charged to the render."""
    if isinstance(result, str):
        if len(result) > limits.max_chars:
            raise too_large(f"{what} result", len(result), limits)
        for i in inputs:
            if result is i:  # handed back unchanged: nothing new was built
                return result
        charge(len(result))
    elif isinstance(result, Iterator):
        return CountedIterator(result, f"{what} result", limits)
    elif isinstance(result, list | tuple | Mapping):
        measure(result, f"{what} result", limits)
    return result


def measure_inputs(values: tuple[Any, ...], what: str, limits: RenderLimits) -> None:
    """Each input within the size limits, and all of them within the item limit."""
    items = 0
    for value in values:
        if type(value) is str:
            if len(value) > limits.max_chars:
                raise too_large(what, len(value), limits)
            continue
        items += measure(value, what, limits).items
    if items > limits.max_items:
        raise RenderLimitError(f"{what} of more than {limits.max_items} items")


def _refuse_width(name: str, width: Any) -> None:
    if isinstance(width, int) and width > MAX_FIELD_WIDTH:
        raise RenderLimitError(f"{name} width {width} exceeds {MAX_FIELD_WIDTH}")
    if isinstance(width, str) and len(width) > MAX_FIELD_WIDTH:
        raise RenderLimitError(f"{name} width exceeds {MAX_FIELD_WIDTH} characters")


def check_replace(text: str, old: Any, new: Any, count: Any, limits: RenderLimits) -> None:
    """Refuse ``text.replace(old, new, count)`` if its result would pass the limit
    (``'a' * 1000).replace('', s)`` builds 1,001 copies of ``s``)."""
    o, n = str(old), str(new)
    hits = text.count(o) if o else len(text) + 1
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    size = len(text) + hits * (len(n) - len(o))
    if size > limits.max_chars:
        raise too_large("replace result", size, limits)


def _center(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    _refuse_width("center", a.get("width", 80))


def _indent(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    width = a.get("width", 4)
    _refuse_width("indent", width)
    text = str(a["s"])
    prefix = width if isinstance(width, int) else len(str(width))
    size = len(text) + (text.count("\n") + 1) * max(prefix, 0)
    if size > limits.max_chars:
        raise too_large("indent result", size, limits)


def _replace(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    check_replace(str(a["s"]), a["old"], a["new"], a.get("count"), limits)


def _format(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    check_printf(str(a["value"]), a.get("kwargs") or a.get("args", ()), limits)


def _join(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    value = a["value"]
    count = len(value) if isinstance(value, Sized) else 0
    size = measure(value, "input of join", limits).chars + len(str(a.get("d", ""))) * count
    if size > limits.max_chars:
        raise too_large("join result", size, limits)


def _wordwrap(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    text = str(a["s"])
    if len(text) > MAX_WORDWRAP_CHARS:
        raise RenderLimitError(
            f"wordwrap of {len(text)} characters: it takes at most {MAX_WORDWRAP_CHARS}"
        )
    width = a.get("width", 79)
    lines = len(text) // width + 1 if isinstance(width, int) and width > 0 else len(text)
    size = len(text) + lines * len(str(a.get("wrapstring") or "\n"))
    if size > limits.max_chars:
        raise too_large("wordwrap result", size, limits)


def _urlize(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    text = str(a["value"])
    if len(text) > MAX_WORDWRAP_CHARS:
        raise RenderLimitError(
            f"urlize of {len(text)} characters: it takes at most {MAX_WORDWRAP_CHARS}"
        )


def _urlencode(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    value = a["value"]
    # Three characters per UTF-8 byte at most: an emoji becomes twelve.
    if isinstance(value, str):
        size = 3 * len(value.encode("utf-8", "surrogatepass"))
    else:
        size = 12 * measure(value, "input of urlencode", limits).chars
    if size > limits.max_chars:
        raise too_large("urlencode result", size, limits)


def refuse_strip_chars(chars: Any) -> None:
    """Refuse stripping more than :data:`MAX_STRIP_CHARS` different characters."""
    if isinstance(chars, str) and len(chars) > MAX_STRIP_CHARS:
        raise RenderLimitError(
            f"strip of {len(chars)} different characters: at most {MAX_STRIP_CHARS}"
        )


def _trim(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    refuse_strip_chars(a.get("chars"))


def _tojson(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    indent = a.get("indent")
    if indent is None:
        return
    if not isinstance(indent, int) or indent > MAX_JSON_INDENT:
        raise RenderLimitError(f"tojson indent {indent!r}: at most {MAX_JSON_INDENT}")
    size = measure(a["value"], "input of tojson", limits)
    indented = size.chars + (size.items + 1) * (size.depth * max(indent, 0) + 1)
    if indented > limits.max_chars:
        raise too_large("tojson result", indented, limits)


def _batch(limits: RenderLimits, a: Mapping[str, Any]) -> None:
    count = a.get("linecount")
    if a.get("fill_with") is not None and isinstance(count, int) and count > limits.max_items:
        raise RenderLimitError(f"batch of {count} with fill_with exceeds {limits.max_items} items")


_BOUNDS: dict[str, Callable[[RenderLimits, Mapping[str, Any]], None]] = {
    "center": _center,
    "indent": _indent,
    "replace": _replace,
    "format": _format,
    "join": _join,
    "wordwrap": _wordwrap,
    "urlize": _urlize,
    "tojson": _tojson,
    "batch": _batch,
    "trim": _trim,
    "urlencode": _urlencode,
}


def _binder(
    func: Callable[..., Any], offset: int
) -> Callable[[tuple[Any, ...], dict[str, Any]], dict[str, Any]]:
    """A fast ``inspect.Signature.bind`` for a filter: arguments by parameter name
    (``*args`` and ``**kwargs`` under their own names; no defaults filled in)."""
    params = list(inspect.signature(func).parameters.values())[offset:]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in params if p.kind in kinds]
    star = next((p.name for p in params if p.kind is inspect.Parameter.VAR_POSITIONAL), None)
    double = next((p.name for p in params if p.kind is inspect.Parameter.VAR_KEYWORD), None)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        arguments = dict(zip(names, args, strict=False))
        if star is not None:
            arguments[star] = args[len(names) :]
        if double is not None:
            arguments[double] = {k: v for k, v in kwargs.items() if k not in names}
            arguments.update((k, v) for k, v in kwargs.items() if k in names)
        else:
            arguments.update(kwargs)
        return arguments

    return bind


def guard(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` (the filter called ``name``) behind the render budget."""
    if getattr(func, "render_guarded", False):
        return func
    offset = 0 if _PassArg.from_obj(func) is None else 1  # context / environment first
    bound = _BOUNDS.get(name)
    bind = _binder(func, offset) if bound is not None else None
    measured = name not in _CONSTANT_TIME
    per_item = name in _PER_ITEM
    what = f"input of {name}"

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget.get()
        if budget is None:
            limits = DEFAULT_LIMITS
        else:
            limits = budget.limits
            budget.check_time()
        if measured and len(args) > offset:
            value = args[offset]
            if isinstance(value, Iterator):
                value = collect(value, what, limits)
                args = (*args[:offset], value, *args[offset + 1 :])
            if per_item and isinstance(value, str) and len(value) > limits.max_items:
                raise RenderLimitError(
                    f"{name} of a string of {len(value)} characters: one item each, "
                    f"at most {limits.max_items}"
                )
            measure_inputs((*args[offset:], *kwargs.values()), what, limits)
            if bound is not None and bind is not None:
                bound(limits, bind(args[offset:], kwargs))
        result = func(*args, **kwargs)
        return checked_result(name, result, args[offset:], limits)

    guarded.render_guarded = True  # type: ignore[attr-defined]
    return guarded


class GuardedFilters(dict[str, Callable[..., Any]]):
    """A filter table that puts every filter installed in it behind the budget.

    Jinja looks filters up in ``environment.filters`` both in compiled templates and in
    ``map``/``select``, so wrapping them here covers every way a template calls them.
    """

    def __init__(self, filters: Mapping[str, Callable[..., Any]]) -> None:
        super().__init__()
        self.update(filters)

    def __setitem__(self, name: str, func: Callable[..., Any]) -> None:
        super().__setitem__(name, guard(name, func))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, func in dict(*args, **kwargs).items():
            self[name] = func

    def install_unguarded(self, name: str, func: Callable[..., Any]) -> None:
        """Install an internal filter as it is (the loop guard counts per item itself)."""
        super().__setitem__(name, func)
