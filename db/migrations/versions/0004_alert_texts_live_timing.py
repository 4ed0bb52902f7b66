"""Alert texts in other languages, live values and end reasons; time to acknowledge and resolve per rule

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 08:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
BUCKETS = 10


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("texts", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("live_value", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("live_count", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("live_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("end_reason", sa.Text(), nullable=True))
    op.create_table(
        "alert_timing",
        sa.Column("rule_id", sa.String(length=100), nullable=False),
        sa.Column("measure", sa.String(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("sum_s", sa.Float(), nullable=False),
        *[sa.Column(f"b{i}", sa.Integer(), nullable=False) for i in range(BUCKETS)],
        sa.PrimaryKeyConstraint("rule_id", "measure"),
    )


def downgrade() -> None:
    op.drop_table("alert_timing")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        for name in ("end_reason", "live_at", "live_count", "live_value", "texts"):
            batch_op.drop_column(name)
