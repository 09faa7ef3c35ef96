"""``/c/{token}``: a signed, expiring click redirect that records the click, over real HTTP."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.channels.clicks import click_url, issue_click_token
from dispatcher.clock import utcnow
from dispatcher.db.models import Click, Delivery
from tests.analytics_dataset import seed
from tests.gateway_server import *  # noqa: F403
from tests.gateway_server import GatewayServer

TARGET = "https://shop.example.com/orders/7?utm=mail"


def clicks(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Click)) or 0)


def a_delivery(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.min(Delivery.id))) or 0)


def test_a_signed_link_records_then_redirects(
    dispatcher: Dispatcher, gateway: GatewayServer
) -> None:
    seed(dispatcher)
    before = clicks(dispatcher)
    delivery_id = a_delivery(dispatcher)
    secret = dispatcher.settings.signing_secret
    url = click_url(gateway.url, issue_click_token(secret, delivery_id, TARGET))
    answer = httpx.get(url)
    assert answer.status_code == 302 and answer.headers["location"] == TARGET
    assert clicks(dispatcher) == before + 1
    with dispatcher.store.session() as s:
        newest = s.scalars(select(Click).order_by(Click.id.desc())).first()
    assert newest is not None and (newest.delivery_id, newest.url) == (delivery_id, TARGET)
    assert "/c/***" in gateway.log() and TARGET not in gateway.log()


def test_bad_tokens_record_nothing(dispatcher: Dispatcher, gateway: GatewayServer) -> None:
    seed(dispatcher)
    before = clicks(dispatcher)
    delivery_id = a_delivery(dispatcher)
    secret = dispatcher.settings.signing_secret
    good = issue_click_token(secret, delivery_id, TARGET)
    body, _, signature = good.partition(".")
    forged = issue_click_token("another-secret", delivery_id, "https://evil.example/")
    # The body of a genuine token with another URL: the signature no longer matches.
    swapped = issue_click_token(secret, delivery_id, "https://evil.example/").split(".")[0]
    expired = issue_click_token(
        secret, delivery_id, TARGET, ttl=timedelta(days=1), now=utcnow() - timedelta(days=3)
    )
    for bad, status in [
        (forged, 400),
        (f"{swapped}.{signature}", 400),
        (body, 400),
        ("x.y", 400),
        ("%00", 400),
        (expired, 410),
    ]:
        answer = httpx.get(f"{gateway.url}/c/{bad}")
        assert answer.status_code == status, (bad, answer.status_code)
        assert "location" not in answer.headers
    assert clicks(dispatcher) == before
