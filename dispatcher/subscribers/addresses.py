"""Checking the addresses, time zones and locales subscribers and operators give us."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.core import parse_locale

from dispatcher.errors import InvalidAddressError, InvalidLocaleError, InvalidTimeZoneError

_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_LINE_BREAKS = ("\r", "\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85")


def validate_email(address: str) -> str:
    """Return ``address`` if it is one plain ``local@domain`` address, else raise.

    Deliberately stricter than :func:`email.utils.parseaddr` (CVE-2023-27043): no display
    names, comments, quoted local parts, or line breaks.

    Raises:
        InvalidAddressError: saying what is wrong.
    """
    if not isinstance(address, str) or not address:
        raise InvalidAddressError("email address must be a non-empty string")
    if any(c in address for c in _LINE_BREAKS):
        raise InvalidAddressError(f"email address {address!r} contains a line break")
    if len(address) > 254:
        raise InvalidAddressError("email address is longer than 254 characters")
    local, sep, domain = address.rpartition("@")
    if not sep or not local or not domain:
        raise InvalidAddressError(f"email address {address!r} must look like name@domain")
    if len(local) > 64 or not _LOCAL.match(local):
        raise InvalidAddressError(f"email address {address!r} has an invalid local part")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidAddressError(f"email address {address!r} has an invalid domain") from None
    labels = ascii_domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidAddressError(f"email address {address!r} has an invalid domain")
    return address


def validate_timezone(name: str) -> str:
    """Return ``name`` if it is a known IANA time zone, else raise InvalidTimeZoneError."""
    if not isinstance(name, str) or not name or name.startswith(("/", ".")) or ".." in name:
        raise InvalidTimeZoneError(
            f"unknown time zone {name!r}; use an IANA name like 'Europe/Madrid'"
        )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidTimeZoneError(
            f"unknown time zone {name!r}; use an IANA name like 'Europe/Madrid'"
        ) from None
    return name


#: The widest locale column; also bounds the work Babel is asked to do.
MAX_LOCALE_CHARS = 35
_LOCALE = re.compile(r"[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*")


def validate_locale(locale: str) -> str:
    """Return ``locale`` as a BCP 47 tag in canonical case (``es_mx`` → ``es-MX``), or raise.

    The one rule for subscribers' locales and template locales: the tag must name a
    locale Babel has data for, as given. Babel resolves unknown parts quietly
    (``es-ZZ`` → ``es_ES``, ``und`` → ``en_US``); such tags are refused, not replaced,
    so that a template saved for one locale is never silently served to another.
    Likely subtags Babel adds are not kept: ``zh-TW`` stays ``zh-TW``.

    Raises:
        InvalidLocaleError: saying what is wrong.
    """
    if not isinstance(locale, str) or not locale:
        raise InvalidLocaleError("invalid locale: use a tag like 'es' or 'es-MX'")
    if len(locale) > MAX_LOCALE_CHARS:
        raise InvalidLocaleError(f"invalid locale: longer than {MAX_LOCALE_CHARS} characters")
    if not _LOCALE.fullmatch(locale):
        raise InvalidLocaleError(f"invalid locale {locale!r}; use a tag like 'es' or 'es-MX'")
    identifier = locale.replace("-", "_")
    try:
        # Just the parts, in canonical case (``parse_locale`` does no lookup).
        language, territory, script, variant = parse_locale(identifier)[:4]
        found = Locale.parse(identifier)
    except (ValueError, UnknownLocaleError):
        raise InvalidLocaleError(f"invalid locale {locale!r}: unknown to Babel") from None
    wanted = (language, territory, script, variant)
    got = (found.language, found.territory, found.script, found.variant)
    # Parts the caller gave must come back as given; parts Babel adds are fine.
    if any(w is not None and w != g for w, g in zip(wanted, got, strict=True)):
        raise InvalidLocaleError(
            f"invalid locale {locale!r}: Babel knows it only as {str(found).replace('_', '-')!r}"
        )
    return "-".join(part for part in (language, script, territory, variant) if part)
