"""Pure functions and small objects, as tables of cases."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from pydantic import BaseModel

from dispatcher import (
    ConfigurationError,
    InvalidAddressError,
    InvalidTimeZoneError,
    NotificationType,
    Priority,
    Settings,
    ValidationError,
)
from dispatcher import log as dlog
from dispatcher.catalog import Catalog
from dispatcher.channels import ChannelRegistry
from dispatcher.channels.base import RetryPolicy
from dispatcher.engine.records import backoff
from dispatcher.enums import DeliveryStatus
from dispatcher.names import BULK, for_priority
from dispatcher.policies.preference import PreferenceRule, resolve
from dispatcher.seed_types import default_catalog
from dispatcher.subscribers.addresses import validate_email, validate_locale, validate_timezone
from dispatcher.templating.renderer import locale_chain


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DISPATCHER_LEASE_SECONDS": "soon"}, "DISPATCHER_LEASE_SECONDS: Input should be a valid"),
        ({"DISPATCHER_SMTP_PORT": "smtp"}, "DISPATCHER_SMTP_PORT: Input should be a valid"),
        ({"DISPATCHER_PUSH_TIMEOUT": "x"}, "DISPATCHER_PUSH_TIMEOUT: Input should be a valid"),
        ({"DISPATCHER_GATEWAY_HEARTBEAT_SECONDS": "x"}, "DISPATCHER_GATEWAY_HEARTBEAT_SECONDS"),
    ],
)
def test_invalid_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env()


def test_settings_defaults_run_on_one_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(__import__("os").environ):
        if key.startswith("DISPATCHER_"):
            monkeypatch.delenv(key)
    s = Settings.from_env()
    assert s.database_url.startswith("sqlite:///")
    assert s.broker_url == "redis://127.0.0.1:6379/0"
    assert s.smtp.host is None and s.push.vapid_private_key is None
    assert (s.templates_dir / "ticket_created").is_dir()


def test_unparseable_database_url_is_a_configuration_error() -> None:
    from dispatcher.db.engine import Store

    with pytest.raises(ConfigurationError, match="DISPATCHER_DATABASE_URL: cannot parse"):
        Store("not a url")


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


@pytest.mark.parametrize(
    ("locale", "chain"),
    [
        ("es-MX", ["es-MX", "es", "en"]),
        ("es", ["es", "en"]),
        (None, ["en"]),
        ("en-GB", ["en-GB", "en"]),
    ],
)
def test_locale_chain(locale: str | None, chain: list[str]) -> None:
    assert locale_chain(locale, "en") == chain


class _P(BaseModel):
    n: int


def test_catalog_refuses_duplicates_bad_names_and_bad_examples() -> None:
    c = Catalog()
    t = NotificationType(name="thing", payload=_P, example={"n": 1})
    c.register(t)
    with pytest.raises(ConfigurationError, match="already registered"):
        c.register(t)
    c.register(t, replace=True)
    with pytest.raises(ConfigurationError, match="must be a Python identifier"):
        c.register(NotificationType(name="bad-name", payload=_P, example={"n": 1}))
    with pytest.raises(ValidationError, match="invalid payload for 'broken'"):
        c.register(NotificationType(name="broken", payload=_P, example={"n": "x"}))
    assert c.names() == ["thing"] and len(c) == 1 and "thing" in c


def test_seed_catalog() -> None:
    c = default_catalog()
    assert c.names() == sorted(
        [
            "ticket_created",
            "ticket_updated",
            "ticket_cancelled",
            "report_generated",
            "system_alert",
            "user_activity",
        ]
    )
    alert = c.get("system_alert")
    assert alert.critical and alert.priority is Priority.URGENT
    assert alert.is_forced("in_app") and not alert.is_forced("web_push")
    assert not c.get("ticket_created").is_forced("in_app")


@pytest.mark.parametrize(
    ("priority", "bulk", "queue"),
    [
        ("low", False, "dispatcher.low"),
        ("urgent", False, "dispatcher.urgent"),
        ("medium", True, BULK),
        ("urgent", True, "dispatcher.urgent"),
    ],
)
def test_queues(priority: str, bulk: bool, queue: str) -> None:
    assert for_priority(priority, bulk=bulk) == queue


@pytest.mark.parametrize("attempt", [1, 2, 3, 6, 12, 40])
def test_backoff_is_bounded_and_grows(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=50, base_seconds=10, cap_seconds=600)
    ceiling = min(600, 10 * 2 ** (attempt - 1))
    for _ in range(50):
        delay = backoff(attempt, policy)
        assert timedelta(seconds=ceiling / 2) <= delay <= timedelta(seconds=ceiling)


def test_kv_log_lines_quote_and_skip_none(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dispatcher")
    dlog.info("delivery.sent", delivery_id=7, reason=None, detail='a "b" c')
    assert caplog.records[-1].getMessage() == 'delivery.sent delivery_id=7 detail="a \\"b\\" c"'
    assert caplog.records[-1].fields == {"delivery_id": 7, "reason": None, "detail": 'a "b" c'}  # type: ignore[attr-defined]


def test_unknown_channel_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown channel 'sms'"):
        ChannelRegistry().get("sms")


def test_final_statuses() -> None:
    assert {s for s in DeliveryStatus if s.is_final} == {
        DeliveryStatus.SENT,
        DeliveryStatus.FAILED,
        DeliveryStatus.SKIPPED,
    }


T = default_catalog().get("ticket_updated")
ALERT = default_catalog().get("system_alert")


@pytest.mark.parametrize(
    ("rules", "ntype", "channel", "enabled", "because"),
    [
        ([], T, "in_app", True, "default"),
        ([], T, "email", False, "default"),
        ([("all", "", "*", False)], T, "in_app", False, "all channel=*"),
        (
            [("all", "", "*", False), ("category", "sales", "in_app", True)],
            T,
            "in_app",
            True,
            "category=sales channel=in_app",
        ),
        (
            [("type", "ticket_updated", "email", True), ("type", "ticket_updated", "*", False)],
            T,
            "email",
            True,
            "type=ticket_updated channel=email",
        ),
        (
            [("type", "ticket_updated", "*", False), ("category", "sales", "web_push", True)],
            T,
            "web_push",
            False,
            "type=ticket_updated channel=*",
        ),
        ([("all", "", "email", False)], ALERT, "email", True, "critical"),
        ([("type", "system_alert", "*", False)], ALERT, "in_app", True, "critical"),
        (
            [("type", "system_alert", "*", False)],
            ALERT,
            "web_push",
            False,
            "type=system_alert channel=*",
        ),
    ],
)
def test_most_specific_preference_wins(rules, ntype, channel, enabled, because) -> None:  # type: ignore[no-untyped-def]
    result = resolve([PreferenceRule(*r) for r in rules], ntype, channel)
    assert (result.enabled, result.because) == (enabled, because)
