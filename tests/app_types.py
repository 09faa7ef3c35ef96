"""An app's own notification type, loaded by workers through DISPATCHER_TYPES_MODULES."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from dispatcher import NotificationType


class PayoutSent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    payout_id: int
    amount: str


payout_sent = NotificationType(
    name="payout_sent",
    payload=PayoutSent,
    example={"payout_id": 1, "amount": "10.00"},
    channels=("in_app",),
    category="payouts",
)
