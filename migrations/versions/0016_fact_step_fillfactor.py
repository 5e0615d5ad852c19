"""fact_step: leave a tenth of each page free (fillfactor 90), so the sweep's raising of an open step's
highest level is a HOT update

The escalation sweep raises ``max_level`` of the open step of every case it escalates. That column is in no
index, but a page filled to the brim has no room for the new row version, so each such UPDATE wrote a new
entry into each of the table's twelve indexes (12,000 index insertions per 1,000 escalations, into indexes
of 67 M rows at ten million cases). With room on the page the new version stays there (a heap-only tuple)
and no index is touched. The setting applies to pages written from now on; existing pages are left as they
are (``VACUUM FULL`` would rewrite them, not needed: the open steps are the recent rows).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 11:00:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fact_step SET (fillfactor = 90)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE fact_step RESET (fillfactor)")
