"""One-click unsubscribe tokens and the preference change they make."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from dispatcher import Dispatcher, NotFoundError
from dispatcher.channels.email.unsubscribe import (
    issue_unsubscribe_token,
    unsubscribe_url,
    verify_unsubscribe_token,
)
from dispatcher.db.models import Preference
from dispatcher.errors import InvalidUnsubscribeTokenError

SECRET = "s3cret-for-tests-long-enough-for-hs256"
NOW = datetime(2026, 11, 27, 21, 0, tzinfo=UTC)


def test_token_round_trips_subscriber_type_and_channel() -> None:
    token = issue_unsubscribe_token(SECRET, "user-42", type="ticket_created", now=NOW)
    request = verify_unsubscribe_token(token, SECRET, now=NOW)
    assert (request.subscriber_id, request.type, request.category, request.channel) == (
        "user-42",
        "ticket_created",
        None,
        "email",
    )


def test_category_token() -> None:
    token = issue_unsubscribe_token(SECRET, "u", category="sales", now=NOW)
    request = verify_unsubscribe_token(token, SECRET, now=NOW)
    assert (request.type, request.category) == (None, "sales")


def test_same_day_tokens_are_identical_so_header_and_body_links_match() -> None:
    a = issue_unsubscribe_token(SECRET, "u", type="t", now=NOW.replace(hour=0, minute=1))
    b = issue_unsubscribe_token(SECRET, "u", type="t", now=NOW.replace(hour=23, minute=59))
    assert a == b


def test_exactly_one_scope_is_required() -> None:
    with pytest.raises(ValueError):
        issue_unsubscribe_token(SECRET, "u", now=NOW)
    with pytest.raises(ValueError):
        issue_unsubscribe_token(SECRET, "u", type="t", category="c", now=NOW)


def test_token_expires_between_ttl_and_ttl_plus_one_day() -> None:
    token = issue_unsubscribe_token(SECRET, "u", type="t", ttl=timedelta(days=3), now=NOW)
    verify_unsubscribe_token(token, SECRET, now=NOW + timedelta(days=3))
    with pytest.raises(InvalidUnsubscribeTokenError, match="expired") as info:
        verify_unsubscribe_token(token, SECRET, now=NOW + timedelta(days=4, hours=1))
    assert info.value.expired


def test_expiry_follows_the_frozen_clock() -> None:
    with freeze_time("2026-03-28 23:30:00"):  # the night Europe moves to summer time
        token = issue_unsubscribe_token(SECRET, "u", type="t", ttl=timedelta(days=1))
    with freeze_time("2026-03-29 23:59:59"):
        assert verify_unsubscribe_token(token, SECRET).subscriber_id == "u"
    with freeze_time("2026-03-30 00:00:00"), pytest.raises(InvalidUnsubscribeTokenError):
        verify_unsubscribe_token(token, SECRET)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-2] + ("AA" if not t.endswith("AA") else "BB"),  # signature
        lambda t: t.split(".")[0] + ".e30." + t.split(".")[2],  # payload swapped
        lambda t: "",
        lambda t: "not-a-token",
        lambda t: t + "x" * 3000,
    ],
    ids=["signature", "payload", "empty", "garbage", "huge"],
)
def test_tampered_tokens_are_refused(mangle) -> None:  # type: ignore[no-untyped-def]
    token = issue_unsubscribe_token(SECRET, "u", type="t", now=NOW)
    with pytest.raises(InvalidUnsubscribeTokenError):
        verify_unsubscribe_token(mangle(token), SECRET, now=NOW)


def test_another_secret_or_purpose_is_refused() -> None:
    token = issue_unsubscribe_token(SECRET, "u", type="t", now=NOW)
    with pytest.raises(InvalidUnsubscribeTokenError):
        verify_unsubscribe_token(token, "another-secret", now=NOW)
    # A JWT signed with the raw secret (as another part of the app might) is not ours.
    foreign = jwt.encode({"sub": "u", "typ": "t", "ch": "email", "exp": 4102444800}, SECRET)
    with pytest.raises(InvalidUnsubscribeTokenError):
        verify_unsubscribe_token(foreign, SECRET, now=NOW)


def test_unsigned_alg_none_token_is_refused() -> None:
    token = jwt.encode(
        {"aud": "dispatcher:unsubscribe", "sub": "u", "typ": "t", "ch": "email", "exp": 4102444800},
        None,
        algorithm="none",
    )
    with pytest.raises(InvalidUnsubscribeTokenError):
        verify_unsubscribe_token(token, SECRET, now=NOW)


def test_url_carries_the_token_untouched() -> None:
    token = issue_unsubscribe_token(SECRET, "u", type="t", now=NOW)
    assert unsubscribe_url("https://app.example.com/", token) == (
        f"https://app.example.com/unsubscribe?token={token}"
    )


def _rules(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Preference)) or 0)


def test_applying_a_type_token_turns_that_type_email_off(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1", email="ana@example.com")
    secret = dispatcher.settings.signing_secret
    token = issue_unsubscribe_token(secret, "u1", type="ticket_created")
    assert dispatcher.preferences.matrix("u1")["ticket_created"]["email"].enabled
    request, rule = dispatcher.unsubscribe(token)
    assert request.type == "ticket_created" and not rule.enabled
    matrix = dispatcher.preferences.matrix("u1")
    assert not matrix["ticket_created"]["email"].enabled
    assert matrix["ticket_created"]["in_app"].enabled  # other channels untouched
    assert matrix["ticket_cancelled"]["email"].enabled  # other types untouched
    dispatcher.unsubscribe(token)  # a second click changes nothing
    assert _rules(dispatcher) == 1


def test_applying_a_category_token_turns_the_category_off(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1", email="ana@example.com")
    token = issue_unsubscribe_token(dispatcher.settings.signing_secret, "u1", category="sales")
    dispatcher.unsubscribe(token)
    matrix = dispatcher.preferences.matrix("u1")
    assert not matrix["ticket_created"]["email"].enabled
    assert not matrix["ticket_cancelled"]["email"].enabled
    assert matrix["report_generated"]["email"].enabled


def test_a_bad_token_changes_nothing(dispatcher: Dispatcher) -> None:
    dispatcher.subscribers.upsert("u1", email="ana@example.com")
    with pytest.raises(InvalidUnsubscribeTokenError):
        dispatcher.unsubscribe("forged.token.value")
    assert _rules(dispatcher) == 0


def test_unknown_subscriber_is_not_found(dispatcher: Dispatcher) -> None:
    token = issue_unsubscribe_token(
        dispatcher.settings.signing_secret, "gone", type="ticket_created"
    )
    with pytest.raises(NotFoundError):
        dispatcher.unsubscribe(token)
