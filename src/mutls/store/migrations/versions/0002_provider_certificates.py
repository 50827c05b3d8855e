"""Provider side: account mTLS settings, certificate authorities and issued certificates.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "certificate_authorities",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=True),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=95), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("subject_patterns", sa.JSON(), nullable=False),
        sa.Column("crl_number", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_certificate_authorities_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_authorities")),
        sa.UniqueConstraint("account_id", "fingerprint_sha256", name="uq_ca_account_fp"),
        sa.UniqueConstraint("name", name=op.f("uq_certificate_authorities_name")),
    )
    with op.batch_alter_table("certificate_authorities", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificate_authorities_account_id"), ["account_id"], unique=False
        )

    op.create_table(
        "issued_certificates",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("ca_id", sa.String(length=32), nullable=False),
        sa.Column("account_id", sa.String(length=32), nullable=False),
        sa.Column("serial", sa.String(length=42), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("sans", sa.JSON(), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=95), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("api_versions", sa.JSON(), nullable=False),
        sa.Column("renewed_from_id", sa.String(length=32), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_issued_certificates_account_id_accounts"),
            ondelete="RESTRICT",
        ),
        sa.ForeignKeyConstraint(
            ["ca_id"],
            ["certificate_authorities.id"],
            name=op.f("fk_issued_certificates_ca_id_certificate_authorities"),
        ),
        sa.ForeignKeyConstraint(
            ["renewed_from_id"],
            ["issued_certificates.id"],
            name=op.f("fk_issued_certificates_renewed_from_id_issued_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issued_certificates")),
        sa.UniqueConstraint("ca_id", "serial", name="uq_issued_certificates_ca_serial"),
        sa.UniqueConstraint(
            "fingerprint_sha256", name=op.f("uq_issued_certificates_fingerprint_sha256")
        ),
    )
    with op.batch_alter_table("issued_certificates", schema=None) as batch_op:
        batch_op.create_index(
            "ix_issued_certificates_account_expiry", ["account_id", "not_after"], unique=False
        )

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mtls_enabled", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("mtls_enforced", sa.Boolean(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("certificate_quota", sa.Integer(), server_default="5", nullable=False)
        )
        batch_op.add_column(
            sa.Column("allowed_routes", sa.JSON(), server_default="[]", nullable=False)
        )
        batch_op.add_column(
            sa.Column("ip_allowlist", sa.JSON(), server_default="[]", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("ip_allowlist")
        batch_op.drop_column("allowed_routes")
        batch_op.drop_column("certificate_quota")
        batch_op.drop_column("mtls_enforced")
        batch_op.drop_column("mtls_enabled")

    with op.batch_alter_table("issued_certificates", schema=None) as batch_op:
        batch_op.drop_index("ix_issued_certificates_account_expiry")

    op.drop_table("issued_certificates")
    with op.batch_alter_table("certificate_authorities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificate_authorities_account_id"))

    op.drop_table("certificate_authorities")
