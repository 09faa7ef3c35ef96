"""clicks on tracked links; deliveries by creation time and events by campaign (analytics, metrics)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        t("clicks"),
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("delivery_id", PK, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [t("deliveries.id")],
            name=op.f(t("fk_clicks_delivery_id_deliveries")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_clicks"))),
    )
    op.create_index(op.f(t("ix_clicks_delivery_id")), t("clicks"), ["delivery_id"], unique=False)
    op.create_index(t("ix_deliveries_created_at"), t("deliveries"), ["created_at"], unique=False)
    op.create_index(t("ix_events_campaign_id"), t("events"), ["campaign_id"], unique=False)


def downgrade() -> None:
    op.drop_index(t("ix_events_campaign_id"), table_name=t("events"))
    op.drop_index(t("ix_deliveries_created_at"), table_name=t("deliveries"))
    op.drop_index(op.f(t("ix_clicks_delivery_id")), table_name=t("clicks"))
    op.drop_table(t("clicks"))
