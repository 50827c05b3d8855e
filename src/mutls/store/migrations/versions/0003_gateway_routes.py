"""Gateway routes: host, path prefix and API version to an upstream, with their access rules.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_routes",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=True),
        sa.Column("path_prefix", sa.String(length=512), nullable=False),
        sa.Column("api_version", sa.String(length=64), nullable=True),
        sa.Column("version_header", sa.String(length=64), nullable=True),
        sa.Column("match_key", sa.String(length=900), nullable=False),
        sa.Column("upstream_url", sa.String(length=512), nullable=False),
        sa.Column("mtls", sa.String(length=16), nullable=False),
        sa.Column("allowed_accounts", sa.JSON(), nullable=False),
        sa.Column("authorization", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_routes")),
        sa.UniqueConstraint("match_key", name=op.f("uq_gateway_routes_match_key")),
        sa.UniqueConstraint("name", name=op.f("uq_gateway_routes_name")),
    )


def downgrade() -> None:
    op.drop_table("gateway_routes")
