"""Date, time, number and money filters: locale, time zone and DST (pure functions)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from dispatcher.errors import TemplateError
from dispatcher.templating.renderer import Renderer, locale_chain

NBSP = "\xa0"


@pytest.fixture(scope="module")
def renderer(tmp_path_factory: pytest.TempPathFactory) -> Renderer:
    return Renderer([tmp_path_factory.mktemp("empty")])


def render(
    renderer: Renderer, source: str, locale: str = "en", tz: str = "UTC", **data: Any
) -> str:
    template = renderer.compile_source(source, "body")
    context = {**data, "recipient": {"locale": locale, "timezone": tz}}
    return renderer.render_template(template, "test", context)


@pytest.mark.parametrize(
    ("locale", "amount", "currency", "expected"),
    [
        ("en", "45.00", "EUR", "€45.00"),
        ("es", "45.00", "EUR", f"45,00{NBSP}€"),
        ("es", Decimal("54180"), "EUR", f"54.180,00{NBSP}€"),
        ("en", 1234.5, "USD", "$1,234.50"),
        ("es", "7", "usd", f"7,00{NBSP}US$"),
        ("en", "12.5", None, "12.50"),
        ("es", "12.5", None, "12,50"),
        ("fr", "45", "EUR", f"45,00{NBSP}€"),
        ("xx-YY", "45", "EUR", "€45.00"),  # unknown locale: the default's format
    ],
)
def test_money_is_written_the_way_the_locale_writes_it(
    renderer: Renderer, locale: str, amount: Any, currency: str | None, expected: str
) -> None:
    out = render(renderer, "{{ amount|money(currency) }}", locale, amount=amount, currency=currency)
    assert out == expected


@pytest.mark.parametrize(
    ("value", "reason"),
    [("abc", "money filter: 'abc' is not a number"), (None, "money filter: None is not a number")],
)
def test_money_refuses_what_is_not_a_number(renderer: Renderer, value: Any, reason: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, "{{ v|money('EUR') }}", v=value)
    assert info.value.reason == reason


def test_money_refuses_a_bad_currency_code(renderer: Renderer) -> None:
    with pytest.raises(TemplateError, match="not an ISO 4217 currency code"):
        render(renderer, "{{ 5|money('EURO') }}")


def test_number_groups_digits_per_locale(renderer: Renderer) -> None:
    assert render(renderer, "{{ n|number }}", "en", n=1204) == "1,204"
    assert render(renderer, "{{ n|number }}", "es", n=54180) == "54.180"


@pytest.mark.parametrize(
    ("value", "tz", "locale", "fmt", "expected"),
    [
        # An ISO string with Z, a naive one (UTC), an aware datetime, another zone.
        ("2027-04-25T18:00:00Z", "Europe/Madrid", "es", "short", "25/4/27, 20:00"),
        ("2027-04-25T18:00:00", "Europe/Madrid", "en", "short", "4/25/27, 8:00\u202fPM"),
        (datetime(2027, 4, 25, 18, tzinfo=UTC), "America/New_York", "en", "HH:mm", "14:00"),
        ("2027-04-25T20:00:00+02:00", "Asia/Kathmandu", "en", "HH:mm", "23:45"),
        # Europe/Madrid, spring forward 2026-03-29 at 01:00 UTC: 01:59 CET then 03:00 CEST.
        ("2026-03-29T00:59:00Z", "Europe/Madrid", "en", "HH:mm xxx", "01:59 +01:00"),
        ("2026-03-29T01:00:00Z", "Europe/Madrid", "en", "HH:mm xxx", "03:00 +02:00"),
        # Fall back 2026-10-25 at 01:00 UTC: 02:30 happens twice, with different offsets.
        ("2026-10-25T00:30:00Z", "Europe/Madrid", "en", "HH:mm xxx", "02:30 +02:00"),
        ("2026-10-25T01:30:00Z", "Europe/Madrid", "en", "HH:mm xxx", "02:30 +01:00"),
        # America/New_York, 2026-03-08 07:00 UTC: 01:59 EST then 03:00 EDT.
        ("2026-03-08T06:59:00Z", "America/New_York", "en", "HH:mm xxx", "01:59 -05:00"),
        ("2026-03-08T07:00:00Z", "America/New_York", "en", "HH:mm xxx", "03:00 -04:00"),
        # Australia/Lord_Howe moves by 30 minutes: 2026-04-05 02:00 local (15:00 UTC).
        ("2026-04-04T14:59:00Z", "Australia/Lord_Howe", "en", "HH:mm xxx", "01:59 +11:00"),
        ("2026-04-04T15:00:00Z", "Australia/Lord_Howe", "en", "HH:mm xxx", "01:30 +10:30"),
    ],
)
def test_datetime_is_shown_in_the_recipients_zone_across_dst(
    renderer: Renderer, value: Any, tz: str, locale: str, fmt: str, expected: str
) -> None:
    out = render(renderer, "{{ v|datetime(fmt) }}", locale, tz, v=value, fmt=fmt)
    assert out == expected


def test_date_and_time_filters(renderer: Renderer) -> None:
    # 23:30 UTC is already the next day in Madrid.
    ctx = {"v": "2026-11-16T23:30:00Z"}
    assert render(renderer, "{{ v|date('long') }}", "es", "Europe/Madrid", **ctx) == (
        "17 de noviembre de 2026"
    )
    assert render(renderer, "{{ v|time }}", "es", "Europe/Madrid", **ctx) == "0:30"
    assert render(renderer, "{{ v|time('HH:mm', tz='UTC') }}", "es", "Europe/Madrid", **ctx) == (
        "23:30"
    )
    # A plain date is a calendar day: no time-zone shift.
    assert render(renderer, "{{ d|date('long') }}", "en", "Pacific/Auckland", d="2026-11-16") == (
        "November 16, 2026"
    )
    assert render(renderer, "{{ d|date('short') }}", "es", d=date(2026, 11, 16)) == "16/11/26"


@freeze_time("2026-10-25 01:30:00")
def test_notification_created_at_from_the_clock_renders_in_the_fold(renderer: Renderer) -> None:
    from dispatcher.clock import utcnow

    out = render(renderer, "{{ t|datetime('HH:mm xxx') }}", "en", "Europe/Madrid", t=utcnow())
    assert out == "02:30 +01:00"


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ 'soon'|datetime }}", "datetime filter: 'soon' is not an ISO date or date-time"),
        ("{{ '2026-01-01'|time }}", "time filter: '2026-01-01' has no time of day"),
        ("{{ '2026-01-01T00:00:00Z'|datetime(tz='Mars/Olympus') }}", "unknown time zone"),
        ("{{ missing|datetime }}", "missing variable 'missing'"),
    ],
)
def test_date_filters_refuse_bad_input_with_a_reason(
    renderer: Renderer, source: str, reason: str
) -> None:
    with pytest.raises(TemplateError) as info:
        render(renderer, source)
    assert reason in info.value.reason


def test_filters_without_a_recipient_use_the_default_locale_and_utc(tmp_path: Path) -> None:
    r = Renderer([tmp_path], default_locale="es")
    template = r.compile_source("{{ v|datetime('HH:mm') }} {{ a|money('EUR') }}", "body")
    assert r.render_template(template, "t", {"v": "2026-01-01T10:00:00Z", "a": 3}) == (
        f"10:00 3,00{NBSP}€"
    )


@pytest.mark.parametrize(
    ("locale", "chain"),
    [
        ("es-MX", ["es-MX", "es", "en"]),
        ("es_MX", ["es-MX", "es", "en"]),
        ("es", ["es", "en"]),
        ("en-GB", ["en-GB", "en"]),
        (None, ["en"]),
    ],
)
def test_locale_chain(locale: str | None, chain: list[str]) -> None:
    assert locale_chain(locale, "en") == chain


def test_locale_fallback_picks_the_most_specific_file(tmp_path: Path) -> None:
    def write(locale: str, text: str) -> None:
        path = tmp_path / "t" / locale / "in_app" / "title.j2"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    write("en", "english")
    write("es", "español")
    write("es-MX", "mexicano")
    r = Renderer([tmp_path])
    title = lambda loc: r.render("t", "in_app", ["title"], loc, {})["title"]  # noqa: E731
    assert title("es-MX") == "mexicano"
    assert title("es-AR") == "español"
    assert title("es") == "español"
    assert title("de") == "english"
    assert title(None) == "english"
