"""Who a set-based chunk is for (:mod:`dispatcher.engine.bulk_inbox`): a campaign run's
recorded audience within a range of subscriber ids, or a slice of a direct event's
``to=`` list by external id."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, FromClause, String, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY

from dispatcher.db.models import CampaignAudience, Subscriber, table

_A = table(CampaignAudience)
_S = table(Subscriber)
_IDS = _S.alias("chunk_subscribers")


@dataclass(frozen=True)
class Audience:
    """The members of one chunk: ``source`` (a FROM holding ``subscribers``) filtered by
    ``where``, each member's subscriber id read from ``member``."""

    source: FromClause
    member: ColumnElement[Any]
    where: tuple[ColumnElement[bool], ...]
    #: What limits another subscriber-id column to the chunk (a superset will do: it
    #: only spares the database reading rows outside it).
    limit: Callable[[ColumnElement[Any]], list[ColumnElement[bool]]]

    @classmethod
    def of_run(cls, run_id: int, low: int, high: int) -> Audience:
        """Campaign run ``run_id``'s recorded audience with ids in ``(low, high]``."""

        def limit(column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
            return [column > low, column <= high]

        return cls(
            _A.join(_S, _S.c.id == _A.c.subscriber_id),
            _A.c.subscriber_id,
            # The id range is repeated on subscribers so that the planner reads only the
            # chunk's.
            (_A.c.run_id == run_id, *limit(_A.c.subscriber_id), *limit(_S.c.id)),
            limit,
        )

    @classmethod
    def of_external_ids(cls, external_ids: Sequence[str], postgres: bool) -> Audience:
        """The subscribers with these external ids (one array parameter on PostgreSQL)."""
        ids = list(external_ids)
        if postgres:
            match = _S.c.external_id == any_(bindparam("chunk_ids", ids, type_=ARRAY(String())))
            inner = _IDS.c.external_id == any_(
                bindparam("chunk_ids_inner", ids, type_=ARRAY(String()))
            )
        else:
            match = _S.c.external_id.in_(ids)
            inner = _IDS.c.external_id.in_(ids)
        members = select(_IDS.c.id).where(inner)

        def limit(column: ColumnElement[Any]) -> list[ColumnElement[bool]]:
            return [] if column is _S.c.id else [column.in_(members)]

        return cls(_S, _S.c.id, (match,), limit)
