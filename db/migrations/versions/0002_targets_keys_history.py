"""KPI targets over the API, API keys, KPI history

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 14:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "kpi_targets",
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("kpi", sa.String(length=64), nullable=False),
        sa.Column("target", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("scope", "kpi"),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("hash"),
    )
    op.create_table(
        "kpi_history",
        sa.Column("resolution", sa.String(length=1), nullable=False),
        sa.Column("scope", sa.String(length=200), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("acc", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("resolution", "scope", "start", "source"),
    )
    with op.batch_alter_table("kpi_history", schema=None) as batch_op:
        batch_op.create_index("ix_kpi_history_scope_start", ["scope", "start"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("kpi_history", schema=None) as batch_op:
        batch_op.drop_index("ix_kpi_history_scope_start")
    op.drop_table("kpi_history")
    op.drop_table("api_keys")
    op.drop_table("kpi_targets")
