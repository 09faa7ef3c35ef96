"""Filters for dates, times, numbers and money, in the recipient's locale and time zone.

Templates see payloads as JSON (ISO strings for dates, strings for decimals), so every
filter accepts those as well as Python objects::

    {{ event_date|datetime('short') }}        25/4/27, 20:00 for a Madrid subscriber in es
    {{ period_start|date('long') }}           16 de noviembre de 2026
    {{ amount|money(currency) }}              €45.00 (en) · 45,00 € (es)
    {{ tickets_sold|number }}                 1,204 (en) · 1204 (es)

Formats are Babel's: ``short``, ``medium``, ``long``, ``full`` or a CLDR pattern such as
``"EEEE d MMMM, HH:mm"``. Time zones come from ``recipient.timezone`` (``tz=`` overrides
it, e.g. for a venue's local time) and are converted with :mod:`zoneinfo`, so an instant
inside a DST change shows the wall time people actually read on their clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date, format_datetime, format_time
from babel.numbers import format_currency, format_decimal
from jinja2 import Environment, Undefined, pass_context
from jinja2.exceptions import TemplateRuntimeError
from jinja2.runtime import Context

from dispatcher.templating.limits import uncounted

#: Used when the context has no recipient (a preview of a layout, say).
FALLBACK_LOCALE = "en"


@lru_cache(maxsize=256)
def babel_locale(tag: str | None, default: str = FALLBACK_LOCALE) -> Locale:
    """The Babel locale for a BCP 47 tag: ``es-MX``, else ``es``, else ``default``.

    Its data is loaded here, once per process, outside the render's time budget: the
    first locale costs Babel's global data too (about 35 ms, far more on a busy machine).
    """
    with uncounted():
        get_global("currency_fractions")  # loads all of Babel's global data, once
        for candidate in (tag, (tag or "").replace("_", "-").split("-")[0], default, "en"):
            if not candidate:
                continue
            try:
                locale = Locale.parse(candidate.replace("-", "_"))
            except (UnknownLocaleError, ValueError):
                continue
            locale.number_symbols  # noqa: B018 - loads the locale's data (and its parents')
            return locale
    raise TemplateRuntimeError(f"no usable locale for {tag!r}")  # pragma: no cover


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        with uncounted():  # read from disk once per process
            return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TemplateRuntimeError(f"unknown time zone {name!r}") from None


def _recipient(context: Context) -> Mapping[str, Any]:
    recipient = context.get("recipient")
    return recipient if isinstance(recipient, Mapping) else {}


def _locale(context: Context) -> Locale:
    default = context.environment.globals.get("default_locale", FALLBACK_LOCALE)
    return babel_locale(_recipient(context).get("locale"), str(default))


def _tz(context: Context, override: str | None) -> tzinfo:
    name = override or _recipient(context).get("timezone") or "UTC"
    return _zone(str(name))


def _reject_undefined(value: Any) -> None:
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises, naming the missing variable


def _plain(moment: datetime) -> datetime:
    """``moment`` as a built-in datetime.

    freezegun's ``FakeDatetime.astimezone`` rebuilds the result without ``fold``, so in a
    frozen test the second 02:30 of a DST fold would show the first one's offset. The
    built-in class is found in the MRO because freezegun swaps every module-level alias.
    """
    real = next(
        c for c in type(moment).__mro__ if c.__module__ == "datetime" and c.__name__ == "datetime"
    )
    if type(moment) is real:
        return moment
    plain: datetime = real(
        moment.year,
        moment.month,
        moment.day,
        moment.hour,
        moment.minute,
        moment.second,
        moment.microsecond,
        moment.tzinfo,
        fold=moment.fold,
    )
    return plain


def to_datetime(value: Any, filter_name: str = "datetime") -> datetime | date:
    """An aware UTC-or-zoned datetime (naive means UTC), or a plain date."""
    _reject_undefined(value)
    if isinstance(value, datetime):
        return _plain(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 10 and "T" not in text:
                return date.fromisoformat(text)
            parsed = datetime.fromisoformat(text)
        except ValueError:
            pass
        else:
            return _plain(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    raise TemplateRuntimeError(f"{filter_name} filter: {value!r} is not an ISO date or date-time")


@pass_context
def datetime_filter(
    context: Context, value: Any, format: str = "medium", tz: str | None = None
) -> str:
    """Date and time of ``value`` in the recipient's time zone and locale."""
    moment = to_datetime(value, "datetime")
    if not isinstance(moment, datetime):
        moment = datetime.combine(moment, time(0), tzinfo=UTC)
    return str(format_datetime(moment, format, tzinfo=_tz(context, tz), locale=_locale(context)))


@pass_context
def date_filter(context: Context, value: Any, format: str = "medium", tz: str | None = None) -> str:
    """The date of ``value``; a date-time is first moved to the recipient's time zone."""
    moment = to_datetime(value, "date")
    if isinstance(moment, datetime):
        moment = moment.astimezone(_tz(context, tz)).date()
    return str(format_date(moment, format, locale=_locale(context)))


@pass_context
def time_filter(context: Context, value: Any, format: str = "short", tz: str | None = None) -> str:
    """The wall-clock time of ``value`` in the recipient's time zone."""
    moment = to_datetime(value, "time")
    if not isinstance(moment, datetime):
        raise TemplateRuntimeError(f"time filter: {value!r} has no time of day")
    local = moment.astimezone(_tz(context, tz))
    return str(format_time(local, format, tzinfo=local.tzinfo, locale=_locale(context)))


#: Longest text and largest exponent a number filter takes: Babel formats every digit in
#: Python, so ``"1e9999"`` would cost tens of milliseconds in one step.
MAX_NUMBER_CHARS = 64
MAX_NUMBER_EXPONENT = 40


def to_decimal(value: Any, filter_name: str) -> Decimal:
    """``value`` as a Decimal; JSON payloads carry amounts as strings."""
    _reject_undefined(value)
    if isinstance(value, bool) or value is None:
        raise TemplateRuntimeError(f"{filter_name} filter: {value!r} is not a number")
    if isinstance(value, Decimal):
        number = value
    else:
        text = str(value).strip()
        if len(text) > MAX_NUMBER_CHARS:
            raise TemplateRuntimeError(
                f"{filter_name} filter: a number of {len(text)} characters is too long"
            )
        try:
            number = Decimal(text)
        except InvalidOperation:
            raise TemplateRuntimeError(f"{filter_name} filter: {value!r} is not a number") from None
    if number.is_finite() and number and abs(number.adjusted()) > MAX_NUMBER_EXPONENT:
        raise TemplateRuntimeError(f"{filter_name} filter: {value!r} is too large or too small")
    return number


@pass_context
def money_filter(context: Context, amount: Any, currency: Any = None) -> str:
    """``amount`` in ``currency`` (ISO 4217) as the recipient's locale writes it."""
    number = to_decimal(amount, "money")
    _reject_undefined(currency)
    if not currency:
        return str(format_decimal(number, format="#,##0.00", locale=_locale(context)))
    code = str(currency).upper()
    if len(code) != 3 or not code.isalpha():
        raise TemplateRuntimeError(f"money filter: {currency!r} is not an ISO 4217 currency code")
    return str(format_currency(number, code, locale=_locale(context)))


@pass_context
def number_filter(context: Context, value: Any) -> str:
    """A number with the recipient's decimal and grouping separators."""
    return str(format_decimal(to_decimal(value, "number"), locale=_locale(context)))


FILTERS = {
    "datetime": datetime_filter,
    "date": date_filter,
    "time": time_filter,
    "money": money_filter,
    "number": number_filter,
}


def install(env: Environment, *, default_locale: str = FALLBACK_LOCALE) -> None:
    """Add the filters to ``env``; ``default_locale`` is used when a recipient has none."""
    env.filters.update(FILTERS)
    env.globals["default_locale"] = default_locale
