"""segments (named, reusable audiences) and campaigns' own templates

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 22:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        t("segments"),
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_segments"))),
        sa.UniqueConstraint("name", name=op.f(t("uq_segments_name"))),
    )
    op.create_table(
        t("campaign_templates"),
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("campaign_id", PK, nullable=False),
        sa.Column("content", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("part", sa.String(length=32), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            [t("campaigns.id")],
            name=op.f(t("fk_campaign_templates_campaign_id_campaigns")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_campaign_templates"))),
        sa.UniqueConstraint(
            "campaign_id",
            "channel",
            "locale",
            "part",
            name=op.f(t("uq_campaign_templates_campaign_id")),
        ),
    )
    op.create_index(op.f(t("ix_campaign_templates_content")), t("campaign_templates"), ["content"])
    with op.batch_alter_table(t("campaigns"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("content", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(t("campaigns"), schema=None) as batch_op:
        batch_op.drop_column("content")
    op.drop_index(op.f(t("ix_campaign_templates_content")), table_name=t("campaign_templates"))
    op.drop_table(t("campaign_templates"))
    op.drop_table(t("segments"))
