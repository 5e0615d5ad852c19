"""work queues and search: open-work indexes by deadline, phone indexes, trigram search (PostgreSQL)

Revision ID: 0009
Revises: 0005
Create Date: 2026-12-01 06:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0005"
branch_labels = None
depends_on = None

OPEN = "state <> 'closed'"
DUE_SCOPES = ("grid_id", "firm_id", "community_id", "street_id", "branch_id", "assigned_grid_worker_id",
              "station_id", "compound_id")
STATE_SCOPES = ("grid_id", "firm_id", "community_id", "street_id", "branch_id")
TRIGRAM_COLUMNS = ("ref", "resident_name", "description", "address_text")


def _due_name(scope):
    return f"ix_case_open_{scope.removesuffix('_id')}_due"


def _state_name(scope):
    return f"ix_case_open_{scope.removesuffix('_id')}_state"


def upgrade():
    where = {"postgresql_where": sa.text(OPEN), "sqlite_where": sa.text(OPEN)}
    for scope in DUE_SCOPES:
        op.create_index(_due_name(scope), "case", [scope, "due_at", "id"], unique=False, **where)
    for scope in STATE_SCOPES:
        op.create_index(_state_name(scope), "case", [scope, "state", "due_at", "id"], unique=False, **where)
    op.create_index("ix_case_open_due", "case", ["due_at", "id"], unique=False, **where)
    op.create_index("ix_case_phone", "case", ["resident_phone"], unique=False)
    op.create_index("ix_case_phone_last4", "case", ["resident_phone_last4"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRIGRAM_COLUMNS:  # GIN trigram indexes on PostgreSQL, plain ones on SQLite
        op.create_index(f"ix_case_{column}_trgm", "case", [column], unique=False, postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_case_{column}_trgm", table_name="case")
    op.drop_index("ix_case_phone_last4", table_name="case")
    op.drop_index("ix_case_phone", table_name="case")
    op.drop_index("ix_case_open_due", table_name="case")
    for scope in STATE_SCOPES:
        op.drop_index(_state_name(scope), table_name="case")
    for scope in DUE_SCOPES:
        op.drop_index(_due_name(scope), table_name="case")
