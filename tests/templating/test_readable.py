"""What a person reads: every seed type's email, push and in-app text shows money, dates
and numbers formatted for the recipient's locale and time zone, never as the payload
stores them (``45.00 EUR``, ``2027-04-25T20:00:00+02:00``)."""

from __future__ import annotations

import re

import pytest

from dispatcher import Dispatcher
from dispatcher.clock import utcnow
from dispatcher.seed_types import SEED_TYPES
from dispatcher.subscribers.recipient import Recipient
from dispatcher.templating.context import template_context

#: An ISO 8601 date or timestamp (``2027-04-25``, ``2027-04-25T20:00``, ``…20:00:00+02:00``).
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2})?")
#: A raw amount next to a currency code (``45.00 EUR``, ``EUR 45.00``, ``54180.00``).
RAW_MONEY = re.compile(r"\b\d+\.\d{2}\s*[A-Z]{3}\b|\b[A-Z]{3}\s*\d+\.\d{2}\b|\b\d{4,}\.\d{2}\b")
CHANNELS = ("email", "web_push", "in_app")
ZONES = {"en": "America/New_York", "es": "Europe/Madrid"}


def render(d: Dispatcher, type_name: str, channel_name: str, locale: str) -> dict[str, str]:
    notification_type = d.catalog.get(type_name)
    channel = d.channels.get(channel_name)
    assert channel is not None
    recipient = Recipient(1, "reader", locale, ZONES[locale], {"email": "r@example.com"})
    context = template_context(
        data=notification_type.validate(notification_type.example),
        recipient=recipient,
        notification_type=notification_type,
        notification_id=1,
        priority=notification_type.priority,
        created_at=utcnow(),
        channel=channel,
    )
    return d.renderer.render(
        type_name,
        channel_name,
        channel.parts,
        locale,
        context,
        optional=channel.optional_parts,
    )


def shown(d: Dispatcher) -> list[tuple[str, str, str]]:
    """(type, channel, locale) of every seed template a person reads."""
    return [
        (t.name, channel, locale)
        for t in SEED_TYPES
        for channel in CHANNELS
        if channel in t.channels
        for locale in ("en", "es")
    ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_no_iso_date_or_raw_amount_reaches_a_person(dispatcher: Dispatcher) -> None:
    cases = shown(dispatcher)
    assert {c[1] for c in cases} == set(CHANNELS)
    problems = []
    for type_name, channel, locale in cases:
        for part, text in render(dispatcher, type_name, channel, locale).items():
            if part in ("url", "tag") or (part == "html" and channel != "email"):
                continue
            # Links carry ids, not what a person reads.
            readable = re.sub(r"https?://\S+", "", text)
            for pattern in (ISO, RAW_MONEY):
                found = pattern.search(readable)
                if found:
                    problems.append(f"{type_name}/{locale}/{channel}/{part}: {found.group()!r}")
    assert problems == []


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_spanish_sale_email_reads_like_spanish(dispatcher: Dispatcher) -> None:
    text = render(dispatcher, "ticket_created", "email", "es")["text"]
    assert "Importe: 45,00\xa0€" in text
    assert "Fecha del evento: 25 abr 2027, 20:00" in text  # Madrid, where it happens
    html = render(dispatcher, "ticket_created", "email", "es")["html"]
    assert "45,00\xa0€" in html and "45.00 EUR" not in html


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_dates_are_in_the_recipients_time_zone(dispatcher: Dispatcher) -> None:
    text = render(dispatcher, "ticket_created", "email", "en")["text"]
    assert "Amount: €45.00" in text
    # 20:00 in Madrid is 14:00 in New York.
    assert re.search(r"Event date: Apr 25, 2027, 2:00\s?PM\n", text)
    push = render(dispatcher, "ticket_created", "web_push", "es")["body"]
    assert "90,00\xa0€" in push or "45,00\xa0€" in push
    report = render(dispatcher, "report_generated", "email", "es")["text"]
    assert "Ingresos: 54.180,00\xa0€" in report
    assert "Entradas vendidas: 1.204" in report
    assert "del 16 nov 2026 al 22 nov 2026" in report


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_a_payload_field_named_actor_wins_over_the_events_actor(dispatcher: Dispatcher) -> None:
    example = dispatcher.catalog.get("user_activity").example
    body = render(dispatcher, "user_activity", "web_push", "en")["body"]
    assert body.startswith(f"{example['actor']}: ")
