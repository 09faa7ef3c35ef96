"""events: fan-out attempts, and the reason and detail of a failed event

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 10:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table(t("events"), schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("fanout_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(sa.Column("reason", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("detail", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table(t("events"), schema=None) as batch_op:
        batch_op.drop_column("detail")
        batch_op.drop_column("reason")
        batch_op.drop_column("fanout_attempts")
