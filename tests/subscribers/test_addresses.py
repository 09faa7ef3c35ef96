"""Email addresses, time zones and locales: tables of valid and invalid values."""

from __future__ import annotations

import pytest

from dispatcher import (
    InvalidAddressError,
    InvalidTimeZoneError,
    ValidationError,
)
from dispatcher.subscribers.addresses import validate_email, validate_locale, validate_timezone


@pytest.mark.parametrize(
    "address", ["ana@example.com", "a.b+tag@sub.example.co", "x@xn--bcher-kva.example"]
)
def test_valid_addresses(address: str) -> None:
    assert validate_email(address) == address


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "non-empty"),
        ("ana", "must look like name@domain"),
        ("ana@", "must look like name@domain"),
        ("ana@localhost", "invalid domain"),
        ("ana@example.com\r\nBcc: x@y.z", "line break"),
        ("ana\u2028@example.com", "line break"),
        ("alice@example.org)<bob@example.org>", "invalid"),
        ("Ana <ana@example.com>", "invalid local part"),
        ("a..b@example.com", "invalid local part"),
        ("ana@-example.com", "invalid domain"),
        ("a" * 65 + "@example.com", "invalid local part"),
    ],
)
def test_invalid_addresses(address: str, problem: str) -> None:
    with pytest.raises(InvalidAddressError, match=problem):
        validate_email(address)


@pytest.mark.parametrize("zone", ["Europe/Madrid", "Asia/Kathmandu", "UTC", "Australia/Lord_Howe"])
def test_valid_time_zones(zone: str) -> None:
    assert validate_timezone(zone) == zone


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime", "CEST"])
def test_invalid_time_zones(zone: str) -> None:
    with pytest.raises(InvalidTimeZoneError, match="unknown time zone"):
        validate_timezone(zone)


@pytest.mark.parametrize(
    ("locale", "expected"), [("es", "es"), ("es_MX", "es-MX"), ("pt-BR", "pt-BR")]
)
def test_locales(locale: str, expected: str) -> None:
    assert validate_locale(locale) == expected


@pytest.mark.parametrize("locale", ["", "spanish!", "e", "es--MX"])
def test_invalid_locales(locale: str) -> None:
    with pytest.raises(ValidationError, match="invalid locale"):
        validate_locale(locale)
