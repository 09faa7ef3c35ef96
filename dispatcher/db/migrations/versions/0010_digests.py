"""digest windows and the deliveries they gather

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
OPEN = sa.text("status = 'open'")


def upgrade() -> None:
    op.create_table(
        t("digest_windows"),
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("subscriber_id", PK, nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closes_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("flushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_id", PK, nullable=False),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_digest_windows_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [t("deliveries.id")],
            name=op.f(t("fk_digest_windows_delivery_id_deliveries")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_digest_windows"))),
        sa.UniqueConstraint("delivery_id", name=op.f(t("uq_digest_windows_delivery_id"))),
    )
    op.create_index(
        t("ix_digest_windows_open"),
        t("digest_windows"),
        ["subscriber_id", "type", "channel"],
        unique=True,
        sqlite_where=OPEN,
        postgresql_where=OPEN,
    )
    op.create_index(t("ix_digest_windows_due"), t("digest_windows"), ["status", "closes_at"])
    op.create_table(
        t("digest_items"),
        sa.Column("delivery_id", PK, nullable=False),
        sa.Column("window_id", PK, nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [t("deliveries.id")],
            name=op.f(t("fk_digest_items_delivery_id_deliveries")),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["window_id"],
            [t("digest_windows.id")],
            name=op.f(t("fk_digest_items_window_id_digest_windows")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f(t("pk_digest_items"))),
    )
    op.create_index(
        op.f(t("ix_digest_items_window_id")), t("digest_items"), ["window_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f(t("ix_digest_items_window_id")), table_name=t("digest_items"))
    op.drop_table(t("digest_items"))
    op.drop_index(t("ix_digest_windows_due"), table_name=t("digest_windows"))
    op.drop_index(t("ix_digest_windows_open"), table_name=t("digest_windows"))
    op.drop_table(t("digest_windows"))
