"""campaigns: channels, send rates, zone, end and next run; runs and their audiences

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table(t("campaigns"), schema=None) as batch_op:
        batch_op.add_column(sa.Column("channels", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("send_rates", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(
            sa.Column("timezone", sa.String(length=64), nullable=False, server_default="UTC")
        )
        batch_op.add_column(sa.Column("end_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f(t("ix_campaigns_next_run_at")), ["next_run_at"])
    op.create_table(
        t("campaign_runs"),
        sa.Column("id", PK, autoincrement=True, nullable=False),
        sa.Column("campaign_id", PK, nullable=False),
        sa.Column("occurrence", sa.DateTime(timezone=True), nullable=False),
        sa.Column("event_id", PK, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cursor", PK, nullable=False),
        sa.Column("targeted", sa.Integer(), nullable=False),
        sa.Column("created", sa.Integer(), nullable=False),
        sa.Column("chunks", sa.Integer(), nullable=False),
        sa.Column("paced", sa.JSON(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            [t("campaigns.id")],
            name=op.f(t("fk_campaign_runs_campaign_id_campaigns")),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            [t("events.id")],
            name=op.f(t("fk_campaign_runs_event_id_events")),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_campaign_runs"))),
        sa.UniqueConstraint(
            "campaign_id", "occurrence", name=op.f(t("uq_campaign_runs_campaign_id"))
        ),
    )
    op.create_index(op.f(t("ix_campaign_runs_campaign_id")), t("campaign_runs"), ["campaign_id"])
    op.create_table(
        t("campaign_audiences"),
        sa.Column("run_id", PK, nullable=False),
        sa.Column("subscriber_id", PK, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            [t("campaign_runs.id")],
            name=op.f(t("fk_campaign_audiences_run_id_campaign_runs")),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_campaign_audiences_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "subscriber_id", name=op.f(t("pk_campaign_audiences"))),
    )


def downgrade() -> None:
    op.drop_table(t("campaign_audiences"))
    op.drop_index(op.f(t("ix_campaign_runs_campaign_id")), table_name=t("campaign_runs"))
    op.drop_table(t("campaign_runs"))
    with op.batch_alter_table(t("campaigns"), schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(t("ix_campaigns_next_run_at")))
        batch_op.drop_column("next_run_at")
        batch_op.drop_column("end_at")
        batch_op.drop_column("timezone")
        batch_op.drop_column("send_rates")
        batch_op.drop_column("channels")
