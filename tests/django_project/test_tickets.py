"""The ticket app sells a ticket and notifies in one transaction; a real worker
delivers, and the seed-style WebSocket client on the real gateway receives it."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from sqlalchemy import func, select

from dispatcher import Dispatcher
from dispatcher.db.models import Event
from tests.conftest import Worker
from tests.django_project.tickets.models import Ticket
from tests.gateway_server import *  # noqa: F403  (fixtures)
from tests.gateway_server import GatewayServer

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "postgres"])


def events(d: Dispatcher) -> int:
    with d.store.session() as s:
        return int(s.scalar(select(func.count()).select_from(Event)) or 0)


def sell(client: Client, owner: int, **extra: object) -> object:
    body = {"owner": owner, "event_name": "Final", "amount": "45.00", **extra}
    return client.post("/tickets/", json.dumps(body), content_type="application/json")


def test_a_sold_ticket_reaches_its_owner_socket_through_a_worker(
    project: Dispatcher, alias: str, worker: Worker, gateway: GatewayServer
) -> None:
    ana = get_user_model().objects.db_manager(alias).create_user("ana", email="ana@example.com")
    assert project.subscribers.get(str(ana.pk)).email == "ana@example.com"
    with gateway.socket(str(ana.pk)) as ws:
        assert ws.recv() == {"type": "unread_count", "count": 0}
        response = sell(Client(), ana.pk)
        assert response.status_code == 201
        sold = response.json()
        assert sold["event"] is not None  # stored in the view's transaction, not after it
        msg = ws.recv_type("notification", timeout=20)
        n = msg["notification"]
        assert (n["type"], n["data"]["ticket_id"]) == ("ticket_created", sold["ticket"])
        assert n["data"]["event_name"] == "Final"
    assert Ticket.objects.using(alias).filter(pk=sold["ticket"]).exists()
    assert events(project) == 1


def test_a_view_that_raises_after_notify_leaves_no_ticket_and_no_event(
    project: Dispatcher, alias: str, worker: Worker, gateway: GatewayServer
) -> None:
    ana = get_user_model().objects.db_manager(alias).create_user("ana", email="ana@example.com")
    with gateway.socket(str(ana.pk)) as ws:
        assert ws.recv() == {"type": "unread_count", "count": 0}
        response = sell(Client(raise_request_exception=False), ana.pk, refuse_payment=True)
        assert response.status_code == 500
        assert [m for m in ws.quiet(2.0) if m["type"] == "notification"] == []
    assert not Ticket.objects.using(alias).exists()
    assert events(project) == 0
    assert project.inbox(str(ana.pk)) == []
