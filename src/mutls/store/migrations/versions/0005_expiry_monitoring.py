"""Expiry monitoring: certificates the data planes observed, and notifications sent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "observed_certificates",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=95), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("route", sa.String(length=64), nullable=True),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_observed_certificates")),
        sa.UniqueConstraint("kind", "fingerprint_sha256", name="uq_observed_certificates_kind_fp"),
    )
    with op.batch_alter_table("observed_certificates", schema=None) as batch_op:
        batch_op.create_index("ix_observed_certificates_not_after", ["not_after"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_observed_certificates_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "expiry_notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("item_key", sa.String(length=255), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expiry_notifications")),
        sa.UniqueConstraint("item_key", "threshold", name="uq_expiry_notifications_item_threshold"),
    )


def downgrade() -> None:
    op.drop_table("expiry_notifications")
    with op.batch_alter_table("observed_certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_observed_certificates_account_id"))
        batch_op.drop_index("ix_observed_certificates_not_after")
    op.drop_table("observed_certificates")
