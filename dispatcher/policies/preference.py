"""Preferences at send time: skip a delivery its subscriber has turned off.

Rules are read when the delivery is about to go out, in one query per batch, so a
change made after the event is honoured. Channels a critical type forces are never
skipped (:func:`dispatcher.preferences.resolve` says so before looking at rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from dispatcher.enums import Reason
from dispatcher.policy import Candidate, Decision, Policy
from dispatcher.preferences import resolve, rules_for


class PreferencePolicy(Policy):
    """Skips deliveries whose most specific preference rule is "off" (``opted_out``)."""

    name = "preference"

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        rules = rules_for(session, (c.recipient.id for c in candidates))
        decisions: dict[int, Decision] = {}
        for c in candidates:
            effective = resolve(rules.get(c.recipient.id, ()), c.type, c.channel)
            if not effective.enabled:
                decisions[c.delivery_id] = Decision.skip(
                    Reason.OPTED_OUT, f"rule: {effective.because}"
                )
        return decisions
