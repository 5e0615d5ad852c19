"""Defect 5: administration screens answer 4xx to odd parameters, export completely, hide hashes."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from app.audit.models import AuditEvent
from app.auth.models import User
from app.auth.services import create_token
from app.extensions import db
from tests.conftest import csrf_token
from tests.factories import user

REPORTED = [
    ("/admin/user/?page=-1", 400),
    ("/admin/user/?page=99999999999999999999", 400),
    ("/admin/user/?flt0_0=%00", 400),
    ("/admin/user/details/?id=abc", 404),
    ("/admin/user/edit/?id=99999999999", 404),
    ("/admin/user/?page_size=100000000", 400),
    ("/admin/user/?sort=abc", 400),
]
ODD_LIST = [
    "?page=-1",
    "?page=99999999999999999999",
    "?page=abc",
    "?page_size=-5",
    "?sort=-1",
    "?flt0_0=abc",
    "?flt99_99=x",
    "?flt0_0=99999999999999999999",
    "?search=%25%5C_",
]
ODD_RECORD = [
    "details/?id=abc",
    "details/?id=-1",
    "details/?id=99999999999",
    "edit/?id=abc",
    "edit/?id=99999999999999999999",
]


def _model_views(app) -> list[str]:
    return sorted(
        {
            rule.rule.split("/")[2]
            for rule in app.url_map.iter_rules()
            if rule.endpoint.endswith(".index_view") and rule.rule.startswith("/admin/") and rule.rule.count("/") == 3
        }
    )


@pytest.mark.parametrize(("path", "status"), REPORTED)
def test_the_reported_admin_urls_answer_4xx(client, auth, path, status):
    auth.login("admin")
    assert client.get(path).status_code == status


def test_no_admin_screen_answers_500_to_odd_parameters(client, auth, app):
    auth.login("admin")
    views = _model_views(app)
    assert "user" in views and "category" in views and len(views) >= 15
    token = csrf_token(client, "/admin/user/")
    failures = []
    for view in views:
        for query in ODD_LIST:
            status = client.get(f"/admin/{view}/{query}").status_code
            if status >= 500:
                failures.append((view, query, status))
        for record in ODD_RECORD:
            status = client.get(f"/admin/{view}/{record}").status_code
            if status >= 500 or status == 200:
                failures.append((view, record, status))
        status = client.post(f"/admin/{view}/delete/", data={"csrf_token": token, "id": "abc"}).status_code
        if status >= 500:
            failures.append((view, "delete id=abc", status))
    assert failures == []


def test_user_csv_export_is_complete_and_audited(client, auth, app):
    auth.login("admin")
    response = client.get("/admin/user/export/csv/")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    with app.app_context():
        usernames = set(db.session.scalars(select(User.username)))
        hashes = list(db.session.scalars(select(User.password_hash)))
    assert rows[0][0] == "用户名"
    assert {row[0] for row in rows[1:]} == usernames  # every user, the body not cut off
    scopes = {row[0]: row[3] for row in rows[1:]}
    assert scopes["grid1"]  # the lazily loaded scope is there
    text = response.get_data(as_text=True)
    assert not any(h in text for h in hashes)
    with app.app_context():
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "data.exported"))
        assert line.actor_name == "admin" and line.details["rows"] == len(usernames)


def test_detail_pages_never_show_hashes(client, auth, app):
    with app.app_context():
        token, _secret = create_token(user("clerk1"), "hotline")
        db.session.commit()
        token_id, token_hash = token.id, token.token_hash
        clerk = user("clerk1")
        clerk_id, password_hash, stamp = clerk.id, clerk.password_hash, clerk.session_stamp
    auth.login("admin")
    user_page = client.get(f"/admin/user/details/?id={clerk_id}").get_data(as_text=True)
    assert "clerk1" in user_page
    assert password_hash not in user_page and stamp not in user_page and "password_hash" not in user_page
    token_page = client.get(f"/admin/apitoken/details/?id={token_id}")
    assert token_page.status_code == 200
    assert token_hash not in token_page.get_data(as_text=True) and "hotline" in token_page.get_data(as_text=True)
    listing = client.get("/admin/apitoken/").get_data(as_text=True)
    assert token_hash not in listing


def test_unlock_action_ignores_malformed_ids(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/user/")
    with app.app_context():
        grid2 = user("grid2").id
        before = db.session.scalar(select(func.count(AuditEvent.id)))
    response = client.post(
        "/admin/user/action/", data={"csrf_token": token, "action": "unlock", "rowid": ["abc", str(grid2)]}
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEvent.id))) == before + 1
