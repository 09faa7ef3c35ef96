"""The JSON shapes of the REST API (they become the served OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dispatcher.policies.preference import Effective, PreferenceRule
from dispatcher.subscribers.inbox import InboxItem

#: Names of types, categories and channels: what the catalog can contain.
NAME_PATTERN = r"^[A-Za-z0-9_.:*-]{1,100}$"
#: The largest id the database holds (a signed 64-bit integer on both backends); the
#: REST paths and the socket's messages refuse anything beyond it.
ID_MAX = 2**63 - 1


class NotificationOut(BaseModel):
    """One notification of the caller's inbox."""

    id: int
    type: str
    category: str
    priority: str
    title: str
    body: str
    url: str | None
    data: dict[str, Any]
    created_at: datetime
    seen_at: datetime | None
    read_at: datetime | None
    archived_at: datetime | None
    #: Who caused the event (a subscriber id), if the app said.
    actor: str | None = None

    @classmethod
    def of(cls, item: InboxItem) -> NotificationOut:
        return cls.model_validate(item, from_attributes=True)


class NotificationPage(BaseModel):
    """A page of notifications, newest first."""

    items: list[NotificationOut]
    #: Pass as ``cursor`` to get the next (older) page; null on the last page.
    next_cursor: str | None


class UnreadCount(BaseModel):
    count: int


class Changed(BaseModel):
    """How many notifications an operation changed."""

    changed: int


class RuleIn(BaseModel):
    """Turn a channel on or off for a type, a category, or everything (neither given)."""

    model_config = ConfigDict(extra="forbid")

    type: str | None = Field(default=None, pattern=NAME_PATTERN)
    category: str | None = Field(default=None, pattern=NAME_PATTERN)
    #: ``in_app``, ``web_push``, ``email`` or ``*`` for every channel.
    channel: str = Field(default="*", pattern=NAME_PATTERN)
    enabled: bool


class RuleOut(BaseModel):
    """A stored rule; ``scope`` is ``type``, ``category`` or ``all``."""

    scope: str
    scope_value: str
    channel: str
    enabled: bool

    @classmethod
    def of(cls, rule: PreferenceRule) -> RuleOut:
        return cls(
            scope=rule.scope,
            scope_value=rule.scope_value,
            channel=rule.channel,
            enabled=rule.enabled,
        )


class EffectiveOut(BaseModel):
    """Whether the caller gets a type on a channel, and the rule that decided."""

    enabled: bool
    because: str

    @classmethod
    def of(cls, effective: Effective) -> EffectiveOut:
        return cls(enabled=effective.enabled, because=effective.because)


class PreferencesOut(BaseModel):
    """The caller's rules and what they add up to (type → channel → decision)."""

    rules: list[RuleOut]
    matrix: dict[str, dict[str, EffectiveOut]]


class Problem(BaseModel):
    """An error answer."""

    detail: str


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
