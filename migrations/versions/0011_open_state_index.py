"""open cases by state and deadline over the whole city (the administrator's chips and state filter)

At ten million cases the per-state counts of an unscoped user read the whole community/state index for
states with no open case (7,145 buffers, 28 ms each); this index answers each in a few buffers.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 11:00:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

OPEN = "state <> 'closed'"


def upgrade():
    op.create_index(
        "ix_case_open_state_due", "case", ["state", "due_at", "id"], unique=False,
        postgresql_where=sa.text(OPEN), sqlite_where=sa.text(OPEN),
    )


def downgrade():
    op.drop_index("ix_case_open_state_due", table_name="case")
