"""Method calls and globals behind the render budget.

Every call a template makes (``environment.call``) passes :func:`check_call` first: its
iterator arguments are collected item by item, its arguments and the value a method
belongs to are measured, and the string methods that can build far more than they take
are estimated before they run: ``center``/``ljust``/``rjust``/``zfill`` widths,
``expandtabs``, ``replace``, ``join``, ``translate``; ``strip``/``lstrip``/``rstrip`` take
at most 256 characters to remove (each character of the text is looked up among them).
``format``/``format_map`` are estimated in the sandbox's ``wrap_str_format``.

Refused: ``encode()`` and ``to_bytes()`` (templates work on text; ``(1).to_bytes(10**9,
'big')`` allocates a gigabyte at once, and bytes would bring every expanding string method
back) and the ``lipsum()`` global (one call builds megabytes of random text in a step no
deadline can interrupt, and a notification has no use for it). ``range()`` is limited to
the loop-iteration budget (a loop over it would stop there anyway).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sized
from types import BuiltinMethodType, MethodType
from typing import Any, NoReturn

from dispatcher.templating.filter_bounds import (
    check_replace,
    collect,
    measure_inputs,
    refuse_strip_chars,
)
from dispatcher.templating.limits import (
    MAX_FIELD_WIDTH,
    RenderLimitError,
    RenderLimits,
    active_limits,
    measure,
    too_large,
)


def _str_width(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    width = args[0] if args else kwargs.get("width")
    if isinstance(width, int) and width > max(len(owner), MAX_FIELD_WIDTH):
        raise RenderLimitError(f"string width {width} exceeds {MAX_FIELD_WIDTH}")


def _str_expandtabs(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    size = args[0] if args else kwargs.get("tabsize", 8)
    if isinstance(size, int) and len(owner) + owner.count("\t") * size > lim.max_chars:
        raise too_large("expandtabs result", len(owner) + owner.count("\t") * size, lim)


def _str_replace(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    if len(args) >= 2:
        check_replace(owner, args[0], args[1], args[2] if len(args) > 2 else -1, lim)


def _str_join(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    if args and isinstance(args[0], Sized):
        size = measure(args[0], "join argument", lim).chars + len(owner) * len(args[0])
        if size > lim.max_chars:
            raise too_large("join result", size, lim)


def _str_strip(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    refuse_strip_chars(args[0] if args else None)


def _str_translate(
    owner: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], lim: RenderLimits
) -> None:
    table = args[0] if args else None
    if isinstance(table, Mapping):
        longest = max((len(v) for v in table.values() if isinstance(v, str)), default=1)
        if len(owner) * longest > lim.max_chars:
            raise too_large("translate result", len(owner) * longest, lim)


_STR_METHODS: dict[str, Callable[[str, tuple[Any, ...], Mapping[str, Any], RenderLimits], None]] = {
    "center": _str_width,
    "ljust": _str_width,
    "rjust": _str_width,
    "zfill": _str_width,
    "expandtabs": _str_expandtabs,
    "replace": _str_replace,
    "join": _str_join,
    "translate": _str_translate,
    "strip": _str_strip,
    "lstrip": _str_strip,
    "rstrip": _str_strip,
}


#: Methods that make bytes (``(1).to_bytes(10**9, 'big')`` allocates a gigabyte at once);
#: bytes have all of str's expanding methods again, and a template has no use for them.
_REFUSED_METHODS = frozenset({"encode", "to_bytes"})


def check_call(
    func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limits: RenderLimits
) -> tuple[Any, ...]:
    """Refuse a call whose inputs or estimated result are too large; returns the
    arguments with iterators collected into lists."""
    if any(isinstance(a, Iterator) for a in args):
        args = tuple(
            collect(a, "call argument", limits) if isinstance(a, Iterator) else a for a in args
        )
    if isinstance(func, BuiltinMethodType | MethodType):
        if func.__name__ in _REFUSED_METHODS:
            raise RenderLimitError(
                f"{func.__name__}() is refused: templates work on text, and it can "
                "allocate any size in one step"
            )
        owner = func.__self__
        if isinstance(owner, str | list | tuple | Mapping):
            measure(owner, f"{func.__name__}() on a value", limits)
        if isinstance(owner, str):
            bound = _STR_METHODS.get(func.__name__)
            if bound is not None:
                bound(owner, args, kwargs, limits)
    if args or kwargs:
        measure_inputs((*args, *kwargs.values()), "call arguments", limits)
    return args


def bounded_range(*args: int) -> range:
    """``range`` limited to the loop-iteration budget."""
    limits = active_limits()
    rng = range(*args)
    try:
        length = len(rng)
    except OverflowError:
        length = limits.max_iterations + 1
    if length > limits.max_iterations:
        raise RenderLimitError(
            f"range of {length} items exceeds {limits.max_iterations} (the loop limit)"
        )
    return rng


def refused_lipsum(*args: Any, **kwargs: Any) -> NoReturn:
    """``lipsum()`` is refused: one call can build megabytes of text in a single step."""
    raise RenderLimitError(
        "lipsum() is refused: one call builds up to megabytes of text in a single step"
    )


refused_lipsum.__name__ = "lipsum"
