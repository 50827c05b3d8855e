"""Egress proxy: egress routes, the egress request log, app token environments, strict expiry.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "egress_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("namespace", sa.String(length=32), nullable=False),
        sa.Column("route_id", sa.String(length=32), nullable=True),
        sa.Column("route_name", sa.String(length=64), nullable=False),
        sa.Column("environment", sa.String(length=64), nullable=True),
        sa.Column("token_id", sa.String(length=32), nullable=True),
        sa.Column("client_ip", sa.String(length=64), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("path", sa.String(length=512), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("upstream_status", sa.Integer(), nullable=True),
        sa.Column("certificate_secret_id", sa.String(length=32), nullable=True),
        sa.Column("certificate_version", sa.Integer(), nullable=True),
        sa.Column("certificate_fingerprint", sa.String(length=95), nullable=True),
        sa.Column("certificate_serial", sa.String(length=42), nullable=True),
        sa.Column("oauth2_secret_id", sa.String(length=32), nullable=True),
        sa.Column("oauth2_token", sa.String(length=16), nullable=True),
        sa.Column("tls_version", sa.String(length=16), nullable=True),
        sa.Column("tls_cipher", sa.String(length=64), nullable=True),
        sa.Column("connection_reused", sa.Boolean(), nullable=True),
        sa.Column("latency_ms", sa.Float(), nullable=False),
        sa.Column("bytes_sent", sa.Integer(), nullable=False),
        sa.Column("bytes_received", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_egress_requests")),
    )
    with op.batch_alter_table("egress_requests", schema=None) as batch_op:
        batch_op.create_index("ix_egress_requests_at", ["at"], unique=False)
        batch_op.create_index("ix_egress_requests_route_at", ["route_id", "at"], unique=False)

    op.create_table(
        "egress_routes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("namespace", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("target_url", sa.String(length=2048), nullable=False),
        sa.Column("certificate_secret_id", sa.String(length=32), nullable=True),
        sa.Column("oauth2_secret_id", sa.String(length=32), nullable=True),
        sa.Column("ca_bundle_secret_id", sa.String(length=32), nullable=True),
        sa.Column("oauth2_scopes", sa.JSON(), nullable=True),
        sa.Column("headers", sa.JSON(), nullable=False),
        sa.Column("tls_servername", sa.String(length=253), nullable=True),
        sa.Column("tls_preset", sa.String(length=16), nullable=False),
        sa.Column("tls_reject_unauthorized", sa.Boolean(), nullable=False),
        sa.Column("environments", sa.JSON(), nullable=False),
        sa.Column("allowed_tokens", sa.JSON(), nullable=False),
        sa.Column("timeout_seconds", sa.Integer(), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_egress_routes_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_egress_routes")),
        sa.UniqueConstraint("namespace", "name", name="uq_egress_routes_namespace"),
    )
    with op.batch_alter_table("egress_routes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_egress_routes_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_egress_routes_ca_bundle_secret_id"),
            ["ca_bundle_secret_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_egress_routes_certificate_secret_id"),
            ["certificate_secret_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_egress_routes_oauth2_secret_id"), ["oauth2_secret_id"], unique=False
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("default_environment", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("environments", sa.JSON(), server_default="[]", nullable=False)
        )

    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("strict_expiry_enforcement", sa.Boolean(), server_default="0", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_column("strict_expiry_enforcement")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("environments")
        batch_op.drop_column("default_environment")

    with op.batch_alter_table("egress_routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_egress_routes_oauth2_secret_id"))
        batch_op.drop_index(batch_op.f("ix_egress_routes_certificate_secret_id"))
        batch_op.drop_index(batch_op.f("ix_egress_routes_ca_bundle_secret_id"))
        batch_op.drop_index(batch_op.f("ix_egress_routes_account_id"))

    op.drop_table("egress_routes")
    with op.batch_alter_table("egress_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_egress_requests_route_at")
        batch_op.drop_index("ix_egress_requests_at")

    op.drop_table("egress_requests")
