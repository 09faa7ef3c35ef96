"""Arguments of public calls, checked against their annotations at the door.

A caller who passes a list where a mapping belongs, a number where an id belongs or a
keyword that does not exist gets an :class:`~dispatcher.errors.InvalidArgumentError`
naming the parameter, instead of a bare ``TypeError`` or ``KeyError`` from deep inside.
Only the shape is checked here (types, as annotated); the values themselves are checked
by the code that understands them (ids, addresses, payloads...).

``@checked`` wraps one function or method; ``@checked_methods`` every public method of
a class (the namespaces of :class:`~dispatcher.Dispatcher`).
"""

from __future__ import annotations

import collections.abc as abc
import enum
import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, TypeVar

from dispatcher.errors import InvalidArgumentError
from dispatcher.validation import MAX_INT64, MIN_INT64

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)

_Check = Callable[[Any], bool]


def checked(fn: F) -> F:
    """Check ``fn``'s arguments against its annotations before it runs."""
    return _wrap(fn, frozenset())


def checked_except(*names: str) -> Callable[[F], F]:
    """:func:`checked`, leaving ``names`` to ``fn`` itself (which has a more precise
    error for them, as ``notify`` has :class:`PayloadValidationError` for ``data``)."""
    return lambda fn: _wrap(fn, frozenset(names))


def _wrap(fn: F, lax: frozenset[str]) -> F:
    signature = inspect.signature(fn)
    name = _call_name(fn.__qualname__)
    parameters = signature.parameters
    open_keywords = any(p.kind == p.VAR_KEYWORD for p in parameters.values())
    checks: dict[str, tuple[_Check, str]] | None = None

    def compile_checks() -> dict[str, tuple[_Check, str]]:
        hints = typing.get_type_hints(fn)
        out: dict[str, tuple[_Check, str]] = {}
        for param in signature.parameters.values():
            if param.name == "self" or param.name in lax:
                continue
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            hint = hints.get(param.name, Any)
            out[param.name] = (_matcher(hint), _describe(hint))
        return out

    def check(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        nonlocal checks
        if not open_keywords:
            for key in kwargs:
                if key not in parameters:
                    raise InvalidArgumentError(key, f"{name}() has no argument {key!r}")
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as exc:
            missing = [
                p.name
                for p in parameters.values()
                if p.default is p.empty
                and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
                and p.name not in kwargs
            ]
            field = missing[-1] if missing else name
            raise InvalidArgumentError(field, f"{name}(): {exc}") from None
        if checks is None:
            checks = compile_checks()
        for key, value in bound.arguments.items():
            found = checks.get(key)
            if found is not None and not found[0](value):
                expected = found[1]
                raise InvalidArgumentError(
                    key, f"{key} must be {expected}, not {_type_name(value)}"
                ) from None

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            check(args, kwargs)
            return await fn(*args, **kwargs)

        return typing.cast(F, async_wrapper)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check(args, kwargs)
        return fn(*args, **kwargs)

    return typing.cast(F, wrapper)


def checked_methods(cls: C) -> C:
    """Apply :func:`checked` to every public method ``cls`` defines itself."""
    for attr, value in list(vars(cls).items()):
        if attr.startswith("_") or not inspect.isfunction(value):
            continue
        setattr(cls, attr, checked(value))
    return cls


def _call_name(qualname: str) -> str:
    return qualname.rsplit(".", 1)[-1]


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _matcher(hint: Any) -> _Check:
    """A predicate: does a value have the shape ``hint`` describes (outer type only,
    plus the items of lists, tuples and sets, which are cheap to look at)."""
    if hint is Any or isinstance(hint, TypeVar):
        return lambda value: True
    if hint is None or hint is type(None):
        return lambda value: value is None
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        options = [_matcher(a) for a in arguments]
        return lambda value: any(option(value) for option in options)
    if origin is typing.Literal:
        allowed = arguments
        return lambda value: any(value == a and type(value) is type(a) for a in allowed)
    if origin is typing.Annotated:
        return _matcher(arguments[0])
    if hint is bool:
        return lambda value: isinstance(value, bool)
    if hint is int:
        # Ids, counts and limits: what the stores keep in a 64-bit integer.
        return lambda value: (
            isinstance(value, int)
            and not isinstance(value, bool)
            and MIN_INT64 <= value <= MAX_INT64
        )
    if hint is float:
        return lambda value: isinstance(value, int | float) and not isinstance(value, bool)
    if origin is not None and isinstance(origin, type):
        if origin is typing.cast(type, abc.Callable):
            return callable
        if issubclass(origin, abc.Mapping):
            return lambda value: isinstance(value, abc.Mapping)
        if issubclass(origin, str | bytes):
            return lambda value: isinstance(value, origin)
        if issubclass(origin, abc.Iterable):
            item = _matcher(arguments[0]) if len(arguments) == 1 else None
            return _iterable(origin, item)
        return lambda value: isinstance(value, origin)
    if isinstance(hint, type):
        if issubclass(hint, enum.Enum):
            return lambda value: isinstance(value, hint)
        return lambda value: isinstance(value, hint)
    return lambda value: True


def _iterable(origin: type, item: _Check | None) -> _Check:
    def match(value: Any) -> bool:
        if isinstance(value, str | bytes | abc.Mapping) or not isinstance(value, abc.Iterable):
            return False
        if origin in (list, tuple, set, frozenset) and not isinstance(value, origin):
            return False
        if item is not None and isinstance(value, list | tuple | set | frozenset):
            return all(item(v) for v in value)
        return True

    return match


def _describe(hint: Any) -> str:
    """``a str or None``, ``a list of str``: what a caller should have passed."""
    if hint is None or hint is type(None):
        return "None"
    origin = typing.get_origin(hint)
    arguments = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in arguments)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in arguments)
    if origin is typing.Annotated:
        return _describe(arguments[0])
    if origin is not None and isinstance(origin, type):
        if issubclass(origin, abc.Mapping):
            return "a mapping"
        if issubclass(origin, abc.Iterable) and len(arguments) == 1:
            return f"a list of {_describe(arguments[0]).removeprefix('a ').removeprefix('an ')}"
        return _article(origin.__name__)
    if hint is int:
        return "an int within 64 bits"
    if isinstance(hint, type):
        return _article(hint.__name__)
    return str(hint)


def _article(name: str) -> str:
    return f"an {name}" if name[:1].lower() in "aeiou" else f"a {name}"
