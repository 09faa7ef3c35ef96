"""In-app content for a set-based chunk (:mod:`dispatcher.engine.bulk_inbox`): each member's
own, rendered in Python when the templates read the recipient and read back by the
``INSERT … SELECT`` as a table (``unnest`` of arrays on PostgreSQL, ``json_each`` on
SQLite), and the chunk's pings.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    Text,
    bindparam,
    func,
    literal,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY

from dispatcher.catalog import NotificationType
from dispatcher.channels.in_app import InAppChannel
from dispatcher.db.types import UTCDateTime
from dispatcher.engine.compose import Composer, Row
from dispatcher.engine.delivery import EventFacts
from dispatcher.errors import TemplateError
from dispatcher.policies.base import Candidate
from dispatcher.subscribers.inbox import InboxItem
from dispatcher.subscribers.recipient import Recipient

#: The parts of in-app content, in the order of the rendered table's columns.
PARTS = ("title", "body", "url")


def recipient(row: Any, locale: str) -> Recipient:
    """The recipient of a subscribers row (``id``, ``external_id``, ``email``,
    ``attributes``, ``timezone``) in ``locale``."""
    return Recipient.from_columns(
        id=row.id,
        external_id=row.external_id,
        locale=locale,
        timezone=row.timezone,
        email=row.email,
        attributes=row.attributes,
    )


def row_for(recipient: Recipient, event: EventFacts, notification_type: NotificationType) -> Row:
    """What rendering ``event`` in-app for ``recipient`` needs (before the notification
    exists: only for templates that do not read it)."""
    candidate = Candidate(0, 0, "in_app", notification_type, event.priority, recipient, 1, True)
    return Row(
        candidate,
        event.id,
        event.payload,
        event.created_at,
        actor=event.actor,
        content=event.content,
    )


def render_each(
    conn: Connection,
    composer: Composer,
    channel: InAppChannel,
    members: Select[Any],
    event: EventFacts,
    notification_type: NotificationType,
) -> tuple[dict[int, dict[str, str]], list[int]]:
    """Render each member's content; ``members`` selects ``id`` (the subscriber's),
    ``external_id``, ``email``, ``attributes``, ``timezone`` and ``locale``. Returns
    content by subscriber id, and the ids whose render failed (the ordinary way records
    the failure on their delivery)."""
    content: dict[int, dict[str, str]] = {}
    failed: list[int] = []
    for member in conn.execute(members):
        row = row_for(recipient(member, member.locale), event, notification_type)
        try:
            content[member.id] = composer.render(row, channel)
        except TemplateError:
            failed.append(member.id)
    return content, failed


def rendered_select(
    conn: Connection,
    postgres: bool,
    composer: Composer,
    channel: InAppChannel,
    members: Select[Any],
    event: EventFacts,
    notification_type: NotificationType,
) -> tuple[Select[Any], dict[int, dict[str, str]], list[int]]:
    """Render each of ``members`` (as :func:`render_each`) and select their notification
    rows (the columns of ``bulk_inbox.NOTIFICATION_COLUMNS``) from what was rendered;
    returns that, the content by subscriber id, and the ids whose render failed."""
    content, failed = render_each(conn, composer, channel, members, event, notification_type)
    table, (sid, title, body, url) = rendered_table(postgres, content)
    now = event.created_at
    rows = select(
        literal(event.id),
        sid,
        literal(event.type, String()),
        literal(notification_type.category, String()),
        literal(event.priority.value, String()),
        literal(now, UTCDateTime()),
        title,
        body,
        url,
        literal(now, UTCDateTime()),
    ).select_from(table)
    # SQLite parses ``FROM t ON CONFLICT`` as a join's ON without a WHERE in between.
    return rows.where(true()), content, failed


def rendered_table(
    postgres: bool, content: Mapping[int, Mapping[str, str]]
) -> tuple[FromClause, list[ColumnElement[Any]]]:
    """``content`` as a table for an ``INSERT … SELECT``: the FROM, and its subscriber
    id, title, body and url columns (one parameter each, not one per row)."""
    sids = list(content)
    columns: list[ColumnElement[Any]]
    if postgres:
        arrays = [bindparam("each_sid", sids, type_=ARRAY(BigInteger()))] + [
            bindparam(f"each_{part}", [content[s].get(part) or None for s in sids], ARRAY(Text()))
            for part in PARTS
        ]
        table = func.unnest(*arrays).table_valued("sid", *PARTS).render_derived()
        columns = [table.c.sid, *(table.c[part] for part in PARTS)]
        return table, columns
    rows = [[s, *(content[s].get(part) or None for part in PARTS)] for s in sids]
    each = func.json_each(bindparam("each_rows", json.dumps(rows), Text())).table_valued("value")
    columns = [func.json_extract(each.c.value, f"$[{i}]") for i in range(1 + len(PARTS))]
    return each, columns


def pings(
    event: EventFacts,
    notification_type: NotificationType,
    rows: Sequence[Any],
    content: Callable[[int, str], tuple[Hashable, Mapping[str, str]]],
) -> list[tuple[str, str]]:
    """The real-time messages of a chunk's members, ready to publish. ``rows`` are
    (notification id, external id, locale, subscriber id); ``content`` gives a member's
    parts and a key shared by those with the same (a locale's, or their own): the part
    of the message after the id is built once per key."""
    tails: dict[Hashable, str] = {}
    dumps = json.dumps
    out = []
    for nid, external_id, locale, sid in rows:
        key, parts = content(sid, locale)
        tail = tails.get(key)
        if tail is None:
            item = InboxItem(
                id=0,
                type=notification_type.name,
                category=notification_type.category,
                priority=event.priority.value,
                title=parts.get("title", ""),
                body=parts.get("body", ""),
                url=parts.get("url") or None,
                data=dict(event.payload),
                created_at=event.created_at,
                seen_at=None,
                read_at=None,
                archived_at=None,
                actor=event.actor,
            ).to_dict()
            del item["id"]
            tail = tails[key] = dumps(item)[1:]
        out.append(
            (
                external_id,
                f'{{"type": "notification", "subscriber": {dumps(external_id)}, '
                f'"notification": {{"id": {int(nid)}, {tail}}}',
            )
        )
    return out
