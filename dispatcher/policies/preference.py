"""Subscribers' opt-in/opt-out rules, and how they combine.

A rule turns a channel (or every channel, ``*``) on or off for one type, one category,
or everything. For a delivery of type T (category C) on channel X the most specific
rule wins, in this order::

    type=T channel=X  >  type=T channel=*  >  category=C channel=X  >
    category=C channel=*  >  all channel=X  >  all channel=*  >  the type's defaults

Channels a critical type forces (``NotificationType.forced_channels``) are always on:
a rule that names a critical type and one of its forced channels with ``enabled=False``
is refused with :class:`ValidationError`; broader rules (a category, ``all``, or
``channel="*"``) are stored and apply to every other channel, but are ignored on forced
channels when the delivery is sent.

A global unsubscribe (:meth:`Preferences.unsubscribe`) is the rule ``all`` x channel
off, plus an "off" for that channel at every narrower scope the subscriber has rules
for, so no older, more specific "on" rule keeps the channel alive.

Preferences at send time: skip a delivery its subscriber has turned off.

Rules are read when the delivery is about to go out, in one query per batch, so a
change made after the event is honoured. Channels a critical type forces are never
skipped (:func:`dispatcher.policies.preference.resolve` says so before looking at rules).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, bindparam, delete, func, select
from sqlalchemy.orm import Session

from dispatcher.arguments import checked_methods
from dispatcher.catalog import Catalog, NotificationType
from dispatcher.clock import utcnow
from dispatcher.db.engine import Store
from dispatcher.db.models import Preference, table
from dispatcher.enums import Reason
from dispatcher.errors import ValidationError
from dispatcher.policies.base import Candidate, Decision, Policy
from dispatcher.subscribers.directory import subscriber_pk

ALL = "all"
CATEGORY = "category"
TYPE = "type"
ANY_CHANNEL = "*"
CRITICAL = "critical"
UNAVAILABLE = "not a channel of this type"


@dataclass(frozen=True)
class PreferenceRule:
    """One stored rule. ``scope_value`` is "" for ``all``."""

    scope: str
    scope_value: str
    channel: str
    enabled: bool

    def describe(self) -> str:
        """``type=ticket_updated channel=email`` (the form ``explain`` prints)."""
        where = ALL if self.scope == ALL else f"{self.scope}={self.scope_value}"
        return f"{where} channel={self.channel}"


@dataclass(frozen=True)
class Effective:
    """Whether a subscriber gets a type on a channel, and which rule decided it."""

    enabled: bool
    #: The deciding rule, or ``default`` / ``critical`` / ``not a channel of this type``.
    because: str

    @property
    def forced(self) -> bool:
        """True when a critical type forces this channel (no rule can turn it off)."""
        return self.because == CRITICAL


def resolve(rules: Iterable[PreferenceRule], type: NotificationType, channel: str) -> Effective:
    """Apply the most specific rule for ``type`` on ``channel`` (pure function)."""
    if type.is_forced(channel):
        return Effective(True, CRITICAL)
    order = [
        (TYPE, type.name, channel),
        (TYPE, type.name, ANY_CHANNEL),
        (CATEGORY, type.category, channel),
        (CATEGORY, type.category, ANY_CHANNEL),
        (ALL, "", channel),
        (ALL, "", ANY_CHANNEL),
    ]
    index = {(r.scope, r.scope_value, r.channel): r for r in rules}
    for key in order:
        rule = index.get(key)
        if rule is not None:
            return Effective(rule.enabled, rule.describe())
    return Effective(channel in type.channels, "default")


@checked_methods
class Preferences:
    """Read and write subscribers' preference rules (by their external id)."""

    def __init__(
        self, store: Store, catalog: Catalog, channels: Callable[[], Iterable[str]]
    ) -> None:
        self.store = store
        self.catalog = catalog
        #: The names of the channels this dispatcher delivers through, in order.
        self._channel_names = channels

    def _scope(self, type: str | None, category: str | None) -> tuple[str, str]:
        if type is not None and category is not None:
            raise ValidationError("give either type= or category=, not both")
        if type is not None:
            self.catalog.get(type)
            return TYPE, type
        if category is not None:
            known = {t.category for t in self.catalog}
            if category not in known:
                raise ValidationError(
                    f"unknown category {category!r}; known categories: {', '.join(sorted(known))}"
                )
            return CATEGORY, category
        return ALL, ""

    def _channel(self, channel: str) -> str:
        known = list(self._channel_names())
        if channel != ANY_CHANNEL and channel not in known:
            raise ValidationError(
                f"unknown channel {channel!r}; use '*' or one of: {', '.join(known)}"
            )
        return channel

    def set(
        self,
        subscriber_id: str,
        *,
        enabled: bool,
        channel: str = ANY_CHANNEL,
        type: str | None = None,
        category: str | None = None,
        session: Session | None = None,
    ) -> PreferenceRule:
        """Turn ``channel`` on or off for a type, a category, or everything.

        Raises:
            NotFoundError: no such subscriber.
            UnknownEventTypeError, ValidationError: unknown type, category or channel, or
                turning off a channel a critical type forces; nothing is written.
        """
        scope, value = self._scope(type, category)
        channel = self._channel(channel)
        if scope == TYPE and not enabled:
            forced = self.catalog.get(value)
            if forced.is_forced(channel):
                raise ValidationError(
                    f"{value!r} is critical and cannot be turned off on {channel!r} "
                    f"(forced channels: {', '.join(forced.forced_channels)})"
                )
        if session is not None:
            return self._set(session, subscriber_id, scope, value, channel, enabled)
        with self.store.session(write=True) as own:
            return self._set(own, subscriber_id, scope, value, channel, enabled)

    def _set(
        self,
        session: Session,
        subscriber_id: str,
        scope: str,
        value: str,
        channel: str,
        enabled: bool,
    ) -> PreferenceRule:
        pk = subscriber_pk(session, subscriber_id)
        row = session.scalar(
            select(Preference).where(
                Preference.subscriber_id == pk,
                Preference.scope == scope,
                Preference.scope_value == value,
                Preference.channel == channel,
            )
        )
        if row is None:
            row = Preference(subscriber_id=pk, scope=scope, scope_value=value, channel=channel)
            session.add(row)
        row.enabled = enabled
        row.updated_at = utcnow()
        session.flush()
        return PreferenceRule(scope, value, channel, enabled)

    def clear(
        self,
        subscriber_id: str,
        *,
        channel: str = ANY_CHANNEL,
        type: str | None = None,
        category: str | None = None,
    ) -> bool:
        """Remove one rule so the next less specific one applies; False if there was none."""
        scope, value = self._scope(type, category)
        channel = self._channel(channel)
        with self.store.session(write=True) as session:
            pk = subscriber_pk(session, subscriber_id)
            result = session.execute(
                delete(Preference).where(
                    Preference.subscriber_id == pk,
                    Preference.scope == scope,
                    Preference.scope_value == value,
                    Preference.channel == channel,
                )
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    def unsubscribe(self, subscriber_id: str, channel: str = "email") -> list[PreferenceRule]:
        """Turn ``channel`` off for everything (the "unsubscribe from all email" link).

        Sets ``all`` x ``channel`` off and, for every type or category the subscriber
        has rules for, that scope x ``channel`` off too, so no narrower rule keeps the
        channel on. Critical types still arrive on their forced channels.

        Raises:
            NotFoundError: no such subscriber.
            ValidationError: unknown channel.
        """
        channel = self._channel(channel)
        if channel == ANY_CHANNEL:
            raise ValidationError("unsubscribe needs one channel, not '*'")
        written: list[PreferenceRule] = []
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            scopes = {(r.scope, r.scope_value) for r in rules_for(session, [pk]).get(pk, [])}
            scopes.add((ALL, ""))
            for scope, value in sorted(scopes):
                if (
                    scope == TYPE
                    and value in self.catalog
                    and self.catalog.get(value).is_forced(channel)
                ):
                    continue
                written.append(self._set(session, subscriber_id, scope, value, channel, False))
        return written

    def rules(self, subscriber_id: str) -> list[PreferenceRule]:
        with self.store.session() as session:
            pk = subscriber_pk(session, subscriber_id)
            return rules_for(session, [pk]).get(pk, [])

    def matrix(self, subscriber_id: str) -> dict[str, dict[str, Effective]]:
        """What the subscriber will get: type → channel → :class:`Effective`.

        Every known channel appears for every type; a channel the type is never sent
        on is off with ``because == "not a channel of this type"``, a forced channel of
        a critical type is on with ``because == "critical"`` whatever the rules say.
        """
        rules = self.rules(subscriber_id)
        channels = list(self._channel_names())
        return {
            t.name: {
                channel: resolve(rules, t, channel)
                if channel in t.channels
                else Effective(False, UNAVAILABLE)
                for channel in channels
            }
            for t in self.catalog
        }


_PREFERENCES = table(Preference)
#: Built once: constructing a statement costs more than running it on SQLite.
_RULES = select(
    _PREFERENCES.c.subscriber_id,
    _PREFERENCES.c.scope,
    _PREFERENCES.c.scope_value,
    _PREFERENCES.c.channel,
    _PREFERENCES.c.enabled,
).where(_PREFERENCES.c.subscriber_id.in_(bindparam("pks", expanding=True)))


def rules_for(
    session: Session, subscriber_pks: Iterable[int]
) -> Mapping[int, list[PreferenceRule]]:
    """All rules of these subscribers (by primary key), in one query."""
    out: dict[int, list[PreferenceRule]] = {}
    pks = list(set(subscriber_pks))
    conn = session.connection()
    for start in range(0, len(pks), 5000):
        for row in conn.execute(_RULES, {"pks": pks[start : start + 5000]}):
            out.setdefault(row.subscriber_id, []).append(
                PreferenceRule(row.scope, row.scope_value, row.channel, row.enabled)
            )
    return out


class PreferencePolicy(Policy):
    """Skips deliveries whose most specific preference rule is "off" (``opted_out``)."""

    name = "preference"

    def preload(self, subscriber_id: ColumnElement[int]) -> ColumnElement[Any]:
        """The subscriber's rules as a JSON array of ``[scope, value, channel, enabled]``
        (NULL when they have none)."""
        row = func.json_build_array(
            _PREFERENCES.c.scope,
            _PREFERENCES.c.scope_value,
            _PREFERENCES.c.channel,
            _PREFERENCES.c.enabled,
        )
        return (
            select(func.json_agg(row))
            .where(_PREFERENCES.c.subscriber_id == subscriber_id)
            .scalar_subquery()
        )

    def decide(
        self, session: Session, candidates: Sequence[Candidate], now: datetime
    ) -> dict[int, Decision]:
        known, unknown = self.preloaded_for(candidates)
        rules = {pk: [PreferenceRule(*row) for row in rows or ()] for pk, rows in known.items()}
        if unknown:
            rules.update(rules_for(session, unknown))
        decisions: dict[int, Decision] = {}
        for c in candidates:
            effective = resolve(rules.get(c.recipient.id, ()), c.type, c.channel)
            if not effective.enabled:
                decisions[c.delivery_id] = Decision.skip(
                    Reason.OPTED_OUT, f"rule: {effective.because}"
                )
        return decisions
