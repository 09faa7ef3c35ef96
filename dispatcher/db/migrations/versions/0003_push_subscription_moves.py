"""push subscriptions remember their last move

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table(t("push_subscriptions"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("moved_from_subscriber_id", PK, nullable=True))
        batch_op.add_column(sa.Column("moved_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f(t("fk_push_subscriptions_moved_from_subscriber_id_subscribers")),
            t("subscribers"),
            ["moved_from_subscriber_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table(t("push_subscriptions"), schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f(t("fk_push_subscriptions_moved_from_subscriber_id_subscribers")),
            type_="foreignkey",
        )
        batch_op.drop_column("moved_at")
        batch_op.drop_column("moved_from_subscriber_id")
