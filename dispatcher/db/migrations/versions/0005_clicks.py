"""clicks on tracked links; deliveries by creation time and events by campaign (analytics, metrics)

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-30 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "clicks",
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("delivery_id", PK, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_clicks_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clicks")),
    )
    op.create_index(op.f("ix_clicks_delivery_id"), "clicks", ["delivery_id"], unique=False)
    op.create_index("ix_deliveries_created_at", "deliveries", ["created_at"], unique=False)
    op.create_index("ix_events_campaign_id", "events", ["campaign_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_events_campaign_id", table_name="events")
    op.drop_index("ix_deliveries_created_at", table_name="deliveries")
    op.drop_index(op.f("ix_clicks_delivery_id"), table_name="clicks")
    op.drop_table("clicks")
