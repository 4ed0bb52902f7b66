"""Parked notifications (outbox.parked_at, outbox.retried_at) and parked transitions

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parked_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("retried_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_outbox_parked", ["parked_at"], unique=False)
    op.create_table(
        "parked_transitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("alert_id", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("transition", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("parked_transitions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_parked_transitions_received_at"), ["received_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("parked_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_parked_transitions_received_at"))
    op.drop_table("parked_transitions")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_parked")
        batch_op.drop_column("retried_at")
        batch_op.drop_column("parked_at")
