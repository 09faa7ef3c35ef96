"""A view that sells a ticket and notifies its owner in one transaction."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction
from django.http import HttpRequest, JsonResponse

from dispatcher.contrib.django import notify
from tests.django_project.tickets.models import Ticket


class PaymentRefused(Exception):
    pass


def sell_ticket(request: HttpRequest) -> JsonResponse:
    db = settings.TICKETS_DATABASE
    body = json.loads(request.body)
    with transaction.atomic(using=db):
        ticket = Ticket.objects.using(db).create(
            owner_id=body["owner"], event_name=body["event_name"], amount=body["amount"]
        )
        receipt = notify(
            "ticket_created",
            to=str(ticket.owner_id),
            data={
                "ticket_id": ticket.pk,
                "event_name": ticket.event_name,
                "seller": "Box office",
                "amount": str(ticket.amount),
                "currency": ticket.currency,
            },
            using=db,
        )
        if body.get("refuse_payment"):
            raise PaymentRefused("the payment provider said no")
    return JsonResponse({"ticket": ticket.pk, "event": receipt.id if receipt else None}, status=201)
