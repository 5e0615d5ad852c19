"""work queues and search: open-work indexes by deadline, phone indexes, trigram search (PostgreSQL);
linked callers' reports (case_report, follow_up.report_id)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 06:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

OPEN = "state <> 'closed'"
DUE_SCOPES = ("grid_id", "firm_id", "community_id", "street_id", "branch_id", "station_id", "compound_id")
GRID_WORK = "state IN ('registered', 'grid_assigned', 'grid_handling')"
STATE_SCOPES = ("grid_id", "firm_id", "community_id", "street_id", "branch_id")
TRIGRAM_COLUMNS = ("ref", "resident_name", "description", "address_text")


def _due_name(scope):
    return f"ix_case_open_{scope.removesuffix('_id')}_due"


def _state_name(scope):
    return f"ix_case_open_{scope.removesuffix('_id')}_state"


def upgrade():
    op.create_table(
        "case_report",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("case_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=24), nullable=False),
        sa.Column("signoff_token", sa.String(length=32), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=50), nullable=True),
        sa.Column("resident_name", sa.String(length=50), nullable=True),
        sa.Column("resident_phone", sa.String(length=20), nullable=True),
        sa.Column("resident_phone_last4", sa.String(length=4), nullable=True),
        sa.Column("station_id", sa.Integer(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("split_case_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["case.id"], name=op.f("fk_case_report_case_id_case"), ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["created_by_id"], ["user.id"], name=op.f("fk_case_report_created_by_id_user"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["split_case_id"], ["case.id"], name=op.f("fk_case_report_split_case_id_case"),
                                ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["station_id"], ["service_station.id"],
                                name=op.f("fk_case_report_station_id_service_station"), ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_case_report")),
        sa.UniqueConstraint("ref", name=op.f("uq_case_report_ref")),
        sa.UniqueConstraint("signoff_token", name=op.f("uq_case_report_signoff_token")),
    )
    op.create_index("ix_case_report_case", "case_report", ["case_id", "id"], unique=False)
    op.create_index("ix_case_report_phone", "case_report", ["resident_phone"], unique=False)
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.add_column(sa.Column("report_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_follow_up_report_id"), ["report_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_follow_up_report_id_case_report"), "case_report", ["report_id"],
                                    ["id"], ondelete="RESTRICT")
    where = {"postgresql_where": sa.text(OPEN), "sqlite_where": sa.text(OPEN)}
    for scope in DUE_SCOPES:
        op.create_index(_due_name(scope), "case", [scope, "due_at", "id"], unique=False, **where)
    for scope in STATE_SCOPES:
        op.create_index(_state_name(scope), "case", [scope, "state", "due_at", "id"], unique=False, **where)
    op.create_index("ix_case_open_due", "case", ["due_at", "id"], unique=False, **where)
    op.create_index("ix_case_grid_work_due", "case", ["assigned_grid_worker_id", "grid_id", "due_at", "id"], unique=False,
                    postgresql_where=sa.text(GRID_WORK), sqlite_where=sa.text(GRID_WORK))
    op.create_index("ix_case_phone", "case", ["resident_phone"], unique=False)
    op.create_index("ix_case_phone_last4", "case", ["resident_phone_last4"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in TRIGRAM_COLUMNS:  # GIN trigram indexes on PostgreSQL, plain ones on SQLite
        op.create_index(f"ix_case_{column}_trgm", "case", [column], unique=False, postgresql_using="gin",
                        postgresql_ops={column: "gin_trgm_ops"})


def downgrade():
    with op.batch_alter_table("follow_up", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_follow_up_report_id_case_report"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_follow_up_report_id"))
        batch_op.drop_column("report_id")
    op.drop_index("ix_case_report_phone", table_name="case_report")
    op.drop_index("ix_case_report_case", table_name="case_report")
    op.drop_table("case_report")
    for column in TRIGRAM_COLUMNS:
        op.drop_index(f"ix_case_{column}_trgm", table_name="case")
    op.drop_index("ix_case_phone_last4", table_name="case")
    op.drop_index("ix_case_phone", table_name="case")
    op.drop_index("ix_case_grid_work_due", table_name="case")
    op.drop_index("ix_case_open_due", table_name="case")
    for scope in STATE_SCOPES:
        op.drop_index(_state_name(scope), table_name="case")
    for scope in DUE_SCOPES:
        op.drop_index(_due_name(scope), table_name="case")
