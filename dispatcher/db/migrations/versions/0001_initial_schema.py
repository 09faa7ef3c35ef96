"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-27 21:01:50.697054
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from dispatcher.db.models import prefixed as t

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        t("campaigns"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cron", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("cursor", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_campaigns"))),
    )
    op.create_table(
        t("subscribers"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("locale", sa.String(length=35), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("attributes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_subscribers"))),
        sa.UniqueConstraint("external_id", name=op.f(t("uq_subscribers_external_id"))),
    )
    op.create_table(
        t("templates"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("part", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_templates"))),
        sa.UniqueConstraint(
            "type", "channel", "locale", "part", "version", name=op.f(t("uq_templates_type"))
        ),
    )
    op.create_table(
        t("events"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("recipients", sa.JSON(), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.Column("send_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column(
            "campaign_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fanned_out_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            [t("campaigns.id")],
            name=op.f(t("fk_events_campaign_id_campaigns")),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_events"))),
        sa.UniqueConstraint("idempotency_key", name=op.f(t("uq_events_idempotency_key"))),
    )
    with op.batch_alter_table(t("events"), schema=None) as batch_op:
        batch_op.create_index(t("ix_events_status_send_at"), ["status", "send_at"], unique=False)

    op.create_table(
        t("preferences"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_value", sa.String(length=128), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_preferences_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_preferences"))),
        sa.UniqueConstraint(
            "subscriber_id",
            "scope",
            "scope_value",
            "channel",
            name=op.f(t("uq_preferences_subscriber_id")),
        ),
    )
    op.create_table(
        t("push_subscriptions"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("endpoint", sa.String(length=2048), nullable=False),
        sa.Column("p256dh", sa.String(length=255), nullable=False),
        sa.Column("auth", sa.String(length=255), nullable=False),
        sa.Column("user_agent", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_success_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_push_subscriptions_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_push_subscriptions"))),
        sa.UniqueConstraint("endpoint", name=op.f(t("uq_push_subscriptions_endpoint"))),
    )
    with op.batch_alter_table(t("push_subscriptions"), schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f(t("ix_push_subscriptions_subscriber_id")), ["subscriber_id"], unique=False
        )

    op.create_table(
        t("quiet_hours"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("start", sa.Time(), nullable=False),
        sa.Column("end", sa.Time(), nullable=False),
        sa.Column("days", sa.String(length=7), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_quiet_hours_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_quiet_hours"))),
    )
    with op.batch_alter_table(t("quiet_hours"), schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f(t("ix_quiet_hours_subscriber_id")), ["subscriber_id"], unique=False
        )

    op.create_table(
        t("notifications"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "subscriber_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("type", sa.String(length=128), nullable=False),
        sa.Column("category", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("inbox_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("read_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            [t("events.id")],
            name=op.f(t("fk_notifications_event_id_events")),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscriber_id"],
            [t("subscribers.id")],
            name=op.f(t("fk_notifications_subscriber_id_subscribers")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_notifications"))),
        sa.UniqueConstraint("event_id", "subscriber_id", name=op.f(t("uq_notifications_event_id"))),
    )
    with op.batch_alter_table(t("notifications"), schema=None) as batch_op:
        batch_op.create_index(t("ix_notifications_inbox"), ["subscriber_id", "id"], unique=False)

    op.create_table(
        t("deliveries"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "notification_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("scheduled_for", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("provider_id", sa.String(length=512), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            [t("notifications.id")],
            name=op.f(t("fk_deliveries_notification_id_notifications")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_deliveries"))),
        sa.UniqueConstraint(
            "notification_id", "channel", name=op.f(t("uq_deliveries_notification_id"))
        ),
    )
    with op.batch_alter_table(t("deliveries"), schema=None) as batch_op:
        batch_op.create_index(t("ix_deliveries_due"), ["status", "scheduled_for"], unique=False)

    op.create_table(
        t("delivery_steps"),
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "delivery_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            [t("deliveries.id")],
            name=op.f(t("fk_delivery_steps_delivery_id_deliveries")),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(t("pk_delivery_steps"))),
    )
    with op.batch_alter_table(t("delivery_steps"), schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f(t("ix_delivery_steps_delivery_id")), ["delivery_id"], unique=False
        )


def downgrade() -> None:

    with op.batch_alter_table(t("delivery_steps"), schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(t("ix_delivery_steps_delivery_id")))

    op.drop_table(t("delivery_steps"))
    with op.batch_alter_table(t("deliveries"), schema=None) as batch_op:
        batch_op.drop_index(t("ix_deliveries_due"))

    op.drop_table(t("deliveries"))
    with op.batch_alter_table(t("notifications"), schema=None) as batch_op:
        batch_op.drop_index(t("ix_notifications_inbox"))

    op.drop_table(t("notifications"))
    with op.batch_alter_table(t("quiet_hours"), schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(t("ix_quiet_hours_subscriber_id")))

    op.drop_table(t("quiet_hours"))
    with op.batch_alter_table(t("push_subscriptions"), schema=None) as batch_op:
        batch_op.drop_index(batch_op.f(t("ix_push_subscriptions_subscriber_id")))

    op.drop_table(t("push_subscriptions"))
    op.drop_table(t("preferences"))
    with op.batch_alter_table(t("events"), schema=None) as batch_op:
        batch_op.drop_index(t("ix_events_status_send_at"))

    op.drop_table(t("events"))
    op.drop_table(t("templates"))
    op.drop_table(t("subscribers"))
    op.drop_table(t("campaigns"))
