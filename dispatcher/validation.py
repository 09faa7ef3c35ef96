"""What may reach the database: ids, texts and JSON values, refused at the door.

Both stores must accept and refuse the same input. PostgreSQL cannot store a NUL
(U+0000) in a text column, SQLite can; neither driver can encode a lone surrogate
(U+D800 to U+DFFF); PostgreSQL's ``json`` refuses ``NaN`` and ``Infinity`` where SQLite
keeps them; Python itself will not turn an integer of more than 4,300 digits into text.
So every text that reaches a table is checked here first, and the caller gets a
:class:`~dispatcher.errors.ValidationError` that names the field and the position,
never a driver's error (which would also echo the value).

**External ids** (subscriber ids, the ids in ``notify(to=...)``, idempotency keys) follow
a stricter, documented character set, because they travel into logs, URLs, CLI tables
and tokens:

* 1 to :data:`MAX_ID_CHARS` characters;
* each a Unicode letter, mark, number, punctuation or symbol (general categories ``L``,
  ``M``, ``N``, ``P``, ``S``), or the ASCII space U+0020, which may not start or end the id;
* so no control characters (C0, DEL, C1, hence no NUL, CR, LF or TAB), no format
  characters (bidi embeddings, overrides and isolates U+202A to U+202E and U+2066 to U+2069,
  zero-width characters, U+FEFF), no line or paragraph separators (U+2028, U+2029), no
  other spaces (no-break space...), and no surrogate, private-use or unassigned code
  point.

Ids stored before this rule existed can still be looked up (read, deleted): lookups only
refuse what no store can hold (:func:`check_storable`).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from dispatcher.errors import InvalidIdentifierError, UnstorableValueError, ValidationError

#: Longest external id (the width of the columns that hold them).
MAX_ID_CHARS = 255
#: Integers in JSON values must fit in 64 bits, the range every store and JSON reader
#: we serve (PostgreSQL ``bigint``, SQLite, Python's ``int`` ↔ text) round-trips.
MIN_INT64 = -(2**63)
MAX_INT64 = 2**63 - 1
#: Deepest nesting of lists and objects in a JSON value.
MAX_JSON_DEPTH = 32

#: A printable ASCII id: the common case, checked without a Python loop.
_ASCII_ID = re.compile(r"[!-~](?:[ -~]*[!-~])?")
#: What no store can hold: NUL, and lone surrogates (no UTF-8 encoding exists).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
#: General categories an id may use (plus U+0020 inside it).
_ID_CATEGORIES = frozenset("LMNPS")


def describe_char(char: str) -> str:
    """``U+000A (LINE FEED)``: a character named without printing it."""
    code = ord(char)
    name = unicodedata.name(char, "") or _CONTROL_NAMES.get(code, "")
    return f"U+{code:04X}" + (f" ({name})" if name else "")


_CONTROL_NAMES = {0: "NUL", 9: "TAB", 10: "LINE FEED", 13: "CARRIAGE RETURN", 127: "DELETE"}


def first_unstorable(text: str) -> int | None:
    """The index of the first character no store can hold (NUL, a lone surrogate)."""
    found = _UNSTORABLE.search(text)
    return None if found is None else found.start()


def check_storable(text: str, field: str) -> str:
    """Return ``text`` if both stores can hold it.

    Raises:
        UnstorableValueError: ``text`` holds a NUL or a lone surrogate; the message names
            ``field``, the position and the character, not the text.
    """
    index = first_unstorable(text)
    if index is not None:
        where = f"{describe_char(text[index])} at position {index}"
        raise UnstorableValueError(field, f"{where} cannot be stored")
    return text


def check_identifier(value: object, field: str) -> str:
    """Return ``value`` if it is an external id in the documented character set.

    Raises:
        InvalidIdentifierError: it is not a string, is empty or too long, or has a
            character outside the set (named by position and code point).
    """
    if not isinstance(value, str):
        raise InvalidIdentifierError(f"{field} must be a string, not {type(value).__name__}")
    if not value or len(value) > MAX_ID_CHARS:
        raise InvalidIdentifierError(f"{field} must be 1 to {MAX_ID_CHARS} characters")
    if _ASCII_ID.fullmatch(value):
        return value
    for index, char in enumerate(value):
        if char == " ":
            if index == 0 or index == len(value) - 1:
                raise InvalidIdentifierError(f"{field} may not start or end with a space")
            continue
        if unicodedata.category(char)[0] not in _ID_CATEGORIES:
            raise InvalidIdentifierError(
                f"{field} has {describe_char(char)} at position {index}; ids allow letters, "
                "marks, numbers, punctuation, symbols and inner spaces"
            )
    return value


def check_json(value: Any, field: str) -> None:
    """Check that ``value`` is JSON both stores keep as it is, or raise.

    Allowed: ``None``, ``bool``, ``int`` within 64 bits, finite ``float``, ``str``
    without NUL or lone surrogates, lists and tuples of those, and mappings with such
    string keys, nested at most :data:`MAX_JSON_DEPTH` deep.

    Raises:
        UnstorableValueError: naming the path (``field.items[2].title``) and the reason.
    """
    problem = json_problem(value)
    if problem is not None:
        path, reason = problem
        raise UnstorableValueError(f"{field}{path}", reason)


def json_problem(value: Any) -> tuple[str, str] | None:
    """``(path, reason)`` of the first part of ``value`` :func:`check_json` refuses,
    ``path`` relative to ``value`` (``""``, ``".title"``, ``"[2]"``); None if all is well."""
    return _json_problem(value, "", 0)


def _json_problem(value: Any, path: str, depth: int) -> tuple[str, str] | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        index = first_unstorable(value)
        if index is None:
            return None
        return path, f"{describe_char(value[index])} at position {index} cannot be stored"
    if isinstance(value, int):
        if MIN_INT64 <= value <= MAX_INT64:
            return None
        return path, "integer does not fit in 64 bits"
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"{value!r} is not a JSON number")
    if depth >= MAX_JSON_DEPTH:
        return path, f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, Mapping):
        for number, (key, item) in enumerate(value.items()):
            if not isinstance(key, str):
                return path, f"key of type {type(key).__name__} is not a string"
            index = first_unstorable(key)
            if index is not None:
                where = f"{describe_char(key[index])} at position {index}"
                return path, f"key #{number} has {where}, which cannot be stored"
            found = _json_problem(item, f"{path}{_step(key, number)}", depth + 1)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _json_problem(item, f"{path}[{index}]", depth + 1)
            if found is not None:
                return found
        return None
    return path, f"{type(value).__name__} is not a JSON value"


def _step(key: str, number: int) -> str:
    """A key as a path step: as it is if it is short printable ASCII, else by number
    (a message must not carry a caller's text at length, nor its line breaks)."""
    if len(key) <= 64 and _ASCII_ID.fullmatch(key) and "." not in key:
        return f".{key}"
    return f".<key #{number}>"


def check_limit(value: int, field: str = "limit") -> int:
    """Return a page size if it is at least 1 (PostgreSQL refuses a negative ``LIMIT``,
    SQLite reads it as none at all).

    Raises:
        ValidationError: naming ``field``.
    """
    if value < 1:
        raise ValidationError(f"{field} must be at least 1, not {value}")
    return value
