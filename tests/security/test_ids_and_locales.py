"""Item 5: loose validation. Locales are checked with Babel, the same way for
subscribers and templates; external ids follow a documented character set."""

from __future__ import annotations

import pytest
from sqlalchemy import func, insert, select

from dispatcher import (
    Dispatcher,
    InvalidIdentifierError,
    InvalidLocaleError,
)
from dispatcher.clock import utcnow
from dispatcher.db.models import Event, Subscriber, TemplateVersion
from dispatcher.subscribers.addresses import validate_locale
from dispatcher.validation import MAX_ID_CHARS

PAYOUT = {"payout_id": 1, "amount": "10.00"}
REPORTED = "xx-INVALID-LOCALE-TAG-TOO-LONG"


def count(d: Dispatcher, model: type) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


# -- locales --------------------------------------------------------------------------


def test_the_reported_locale_is_refused_by_subscribers_and_templates(
    dispatcher: Dispatcher,
) -> None:
    with pytest.raises(InvalidLocaleError, match="unknown to Babel"):
        dispatcher.subscribers.upsert("ana", locale=REPORTED)
    with pytest.raises(InvalidLocaleError, match="unknown to Babel"):
        dispatcher.templates.save("system_alert", "in_app", REPORTED, "title", "{{ title }}")
    assert count(dispatcher, Subscriber) == 0
    assert count(dispatcher, TemplateVersion) == 0


@pytest.mark.parametrize(
    ("locale", "why"),
    [
        ("xx", "unknown to Babel"),  # the right shape, no such language
        ("tlh", "unknown to Babel"),
        ("es-ZZ", "Babel knows it only as 'es-ES'"),  # Babel would quietly swap it
        ("und", "Babel knows it only as 'en-US'"),
        ("en-GB-oxendict", "Babel knows it only as 'en-GB'"),
        ("en\n", "use a tag like"),
        ("es--MX", "use a tag like"),
        ("e", "use a tag like"),
        ("es-MX\x00", "use a tag like"),
        ("es-" + "A" * 40, "longer than 35 characters"),
        ("", "use a tag like"),
    ],
)
def test_locales_babel_does_not_know_as_given_are_refused_in_both_places(
    dispatcher: Dispatcher, locale: str, why: str
) -> None:
    with pytest.raises(InvalidLocaleError, match=why):
        dispatcher.subscribers.upsert("ana", locale=locale)
    with pytest.raises(InvalidLocaleError, match=why):
        dispatcher.templates.save("system_alert", "in_app", locale, "title", "{{ title }}")
    assert count(dispatcher, Subscriber) == 0
    assert count(dispatcher, TemplateVersion) == 0


@pytest.mark.parametrize(
    ("locale", "stored"),
    [
        ("es", "es"),
        ("es_MX", "es-MX"),
        ("ES-mx", "es-MX"),
        ("pt-BR", "pt-BR"),
        ("es-419", "es-419"),
        ("zh-TW", "zh-TW"),  # Babel adds the script; we keep the tag as given
        ("zh-hant-tw", "zh-Hant-TW"),
        ("sr-Latn", "sr-Latn"),
    ],
)
def test_known_locales_are_stored_in_canonical_case_in_both_places(
    dispatcher: Dispatcher, locale: str, stored: str
) -> None:
    assert validate_locale(locale) == stored
    assert dispatcher.subscribers.upsert("ana", locale=locale).locale == stored
    saved = dispatcher.templates.save("system_alert", "in_app", locale, "title", "{{ title }}")
    assert saved.locale == stored


# -- ids -------------------------------------------------------------------------------

HOSTILE_IDS = [
    ("ana\r\nX-Injected: 1", r"U\+000D \(CARRIAGE RETURN\) at position 3"),
    ("ana\nbob", r"U\+000A \(LINE FEED\) at position 3"),
    ("ana\u2028bob", r"U\+2028 \(LINE SEPARATOR\) at position 3"),
    ("ana\u2029", r"U\+2029 \(PARAGRAPH SEPARATOR\) at position 3"),
    ("ana\x00", r"U\+0000 \(NUL\) at position 3"),
    ("ana\tbob", r"U\+0009 \(TAB\) at position 3"),
    ("ana\x7f", r"U\+007F \(DELETE\) at position 3"),
    ("ana\x85", r"U\+0085 at position 3"),
    ("ana\u202egnp.exe", r"U\+202E \(RIGHT-TO-LEFT OVERRIDE\) at position 3"),
    ("ana\u2066", r"U\+2066 \(LEFT-TO-RIGHT ISOLATE\) at position 3"),
    ("ana\u200b", r"U\+200B \(ZERO WIDTH SPACE\) at position 3"),
    ("\ufeffana", r"U\+FEFF \(ZERO WIDTH NO-BREAK SPACE\) at position 0"),
    ("ana\u00a0bob", r"U\+00A0 \(NO-BREAK SPACE\) at position 3"),
    ("ana\ue000", r"U\+E000 at position 3"),  # private use
    ("ana\ud800", r"U\+D800 at position 3"),  # a lone surrogate
    (" ana", "may not start or end with a space"),
    ("ana ", "may not start or end with a space"),
    ("", "must be 1 to 255 characters"),
    ("a" * (MAX_ID_CHARS + 1), "must be 1 to 255 characters"),
]


@pytest.mark.parametrize(("bad", "why"), HOSTILE_IDS)
def test_ids_outside_the_character_set_are_refused_everywhere(
    dispatcher: Dispatcher, bad: str, why: str
) -> None:
    with pytest.raises(InvalidIdentifierError, match=why) as info:
        dispatcher.subscribers.upsert(bad)
    assert "bob" not in str(info.value)  # named by position, not echoed
    dispatcher.subscribers.upsert("ana")
    with pytest.raises(InvalidIdentifierError, match=why):
        dispatcher.notify("payout_sent", to=["ana", bad], data=PAYOUT)
    with pytest.raises(InvalidIdentifierError, match=why):
        dispatcher.notify("payout_sent", to="ana", data=PAYOUT, idempotency_key=bad)
    assert count(dispatcher, Subscriber) == 1
    assert count(dispatcher, Event) == 0


@pytest.mark.parametrize(
    "good",
    [
        "user-42",
        "ana@example.org",
        "José Núñez",
        "用户42",
        "ana 🎉",
        "org:7/user?42#x",
        "a" * MAX_ID_CHARS,
        "e\u0301",  # a combining mark
    ],
)
def test_ids_inside_the_character_set_round_trip(dispatcher: Dispatcher, good: str) -> None:
    dispatcher.subscribers.upsert(good, locale="es")
    assert dispatcher.subscribers.get(good).id == good
    receipt = dispatcher.notify("payout_sent", to=good, data=PAYOUT, idempotency_key=good)
    assert receipt.idempotency_key == good
    assert dispatcher.explain(f"key:{good}").event_id == receipt.id


def test_an_id_stored_before_the_rule_can_still_be_read_and_deleted(
    dispatcher: Dispatcher,
) -> None:
    legacy = "ana\r\nbob"
    with dispatcher.store.session(write=True) as s:
        row = {"external_id": legacy, "timezone": "UTC", "attributes": {}, "created_at": utcnow()}
        s.execute(insert(Subscriber), row)
    assert dispatcher.subscribers.get(legacy).id == legacy
    assert dispatcher.inbox(legacy) == []
    assert dispatcher.subscribers.delete(legacy) is True
    assert count(dispatcher, Subscriber) == 0
