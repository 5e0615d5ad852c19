"""The floor of intake on our stack (issue 12): Flask 3 + Flask-SQLAlchemy 3.1 + psycopg, no logic.

    gunicorn -w 2 'bench.floor_app:create_floor_app()'      (DATABASE_URL = the bench database)

- ``POST /floor`` writes exactly the rows an intake writes — the case, its event, its notification —
  in one transaction with fixed values (no validation, no routing, no timers, no serializer): the
  physical limit of intake on this stack and this database.
- ``POST /one`` does one INSERT of one small row: the limit of any write endpoint here.

The database must already have our schema (``flask db upgrade``) and the demo organisation.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime

from flask import Flask, jsonify
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import text

db = SQLAlchemy()

CASE = text(
    """
    INSERT INTO "case" (ref, category_id, workflow, urgency, state, channel, description, street_id, community_id,
        compound_id, resident_name, resident_phone, resident_phone_last4, signoff_token, grid_id, firm_id,
        assigned_grid_worker_id, needs_routing, reopen_count, resolved_on_site, branch_approved, created_at,
        updated_at, state_entered_at, escalation_level, case_overdue, shelved, shelve_review_notified, version)
    VALUES ('FLR-' || nextval('bench_floor_ref'), :category, 'standard', 'normal', 'grid_assigned', 'window',
        '楼道水管漏水，地面积水', :street, :community, :compound, '陈先生', '13812345678', '5678', :token, :grid,
        :firm, :worker, false, 0, false, false, :now, :now, :now, 0, false, false, false, 1)
    RETURNING id
    """
)
EVENT = text(
    """
    INSERT INTO case_event (case_id, created_at, kind, actor_id, actor_role, actor_name, "trigger", from_state,
        to_state) VALUES (:case, :now, 'created', :worker, 'clerk', 'bench', NULL, NULL, 'registered')
    """
)
NOTIFICATION = text(
    """
    INSERT INTO notification (user_id, case_id, kind, title, body, created_at)
    VALUES (:worker, :case, 'new_work', '新工单', '请签收', :now)
    """
)


def create_floor_app() -> Flask:
    app = Flask(__name__)
    app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["DATABASE_URL"]
    db.init_app(app)
    with app.app_context():
        with db.engine.begin() as connection:
            connection.execute(text("CREATE SEQUENCE IF NOT EXISTS bench_floor_ref"))
            connection.execute(
                text(
                    "CREATE TABLE IF NOT EXISTS bench_one (id bigserial PRIMARY KEY, body text, created_at timestamptz)"
                )
            )
            row = (
                connection.execute(
                    text(
                        """
                    SELECT c.id AS compound, c.community_id AS community, m.street_id AS street, c.grid_id AS grid,
                           (SELECT firm_id FROM firm_contract WHERE compound_id = c.id LIMIT 1) AS firm,
                           (SELECT id FROM "user" WHERE role = 'grid_worker' AND grid_id = c.grid_id LIMIT 1) AS worker,
                           (SELECT id FROM category ORDER BY id LIMIT 1) AS category
                    FROM compound c JOIN community m ON m.id = c.community_id
                    WHERE c.grid_id IS NOT NULL ORDER BY c.id LIMIT 1
                    """
                    )
                )
                .mappings()
                .one()
            )
    fixed = dict(row)

    @app.post("/floor")
    def floor():
        now = datetime.now(UTC)
        case_id = db.session.execute(CASE, {**fixed, "token": secrets.token_urlsafe(12), "now": now}).scalar_one()
        db.session.execute(EVENT, {"case": case_id, "worker": fixed["worker"], "now": now})
        db.session.execute(NOTIFICATION, {"case": case_id, "worker": fixed["worker"], "now": now})
        db.session.commit()
        return jsonify({"id": case_id}), 201

    @app.post("/one")
    def one():
        db.session.execute(
            text("INSERT INTO bench_one (body, created_at) VALUES ('x', :now)"), {"now": datetime.now(UTC)}
        )
        db.session.commit()
        return jsonify({"ok": True}), 201

    return app
