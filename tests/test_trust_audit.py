"""The audit log: what is written, that it cannot be changed, the administrators' page and export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import select, text

from app.audit.models import AuditEvent
from app.audit.services import record_audit
from app.cases.models import Category
from app.extensions import db
from tests.conftest import CSRF_RE, csrf_token
from tests.factories import user


def _lines(app, action):
    with app.app_context():
        return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def test_record_audit_keeps_who_what_and_where(app):
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": "10.0.0.9"}):
        row = record_audit(user("admin"), "config.changed", target=user("grid1"), details={"x": 1})
        assert (row.actor_name, row.target_type, row.target_id, row.ip) == (
            "admin",
            "user",
            str(row.target_id),
            "10.0.0.9",
        )
        assert row.target_label.startswith("网格员") or "grid1" in row.target_label
        db.session.rollback()


def test_audit_lines_cannot_be_changed_or_deleted(ctx):
    row = record_audit(None, "login.failed", target="someone")
    db.session.commit()
    row.action = "nothing"
    with pytest.raises(RuntimeError):
        db.session.flush()
    db.session.rollback()
    with pytest.raises(Exception, match="(?i)immutable|never deleted"):
        db.session.execute(text("DELETE FROM audit_event WHERE id = :id"), {"id": row.id})
        db.session.flush()
    db.session.rollback()
    with pytest.raises(Exception, match="(?i)immutable"):
        db.session.execute(text("UPDATE audit_event SET action = 'x' WHERE id = :id"), {"id": row.id})
    db.session.rollback()


def test_category_time_limit_change_is_a_config_line_with_old_and_new(client, auth, app):
    auth.login("admin")
    with app.app_context():
        category = db.session.scalar(select(Category).where(Category.code == "water_leak"))
        category_id, old_name = category.id, category.name_zh
    form = client.get(f"/admin/category/edit/?id={category_id}").get_data(as_text=True)
    data = {name: value for name, value in _form_values(form).items()}
    data["name_zh"] = "漏水（改）"
    data["csrf_token"] = CSRF_RE.search(form).group(1)
    response = client.post(f"/admin/category/edit/?id={category_id}", data=data)
    assert response.status_code == 302
    (line,) = _lines(app, "config.changed")
    assert line.actor_name == "admin" and line.details["table"] == "category"
    assert line.details["changes"]["name_zh"] == [old_name, "漏水（改）"]


def _form_values(html: str) -> dict[str, str]:
    """The current values of an admin edit form's inputs, selects and checked boxes."""
    import re

    values = {}
    for name, value in re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', html):
        values.setdefault(name, value)
    for match in re.finditer(r'<input([^>]*type="checkbox"[^>]*)>', html):
        attributes = match.group(1)
        name = re.search(r'name="([^"]+)"', attributes).group(1)
        if "checked" in attributes:
            values[name] = "y"
        else:
            values.pop(name, None)
    for name, body in re.findall(r'<select[^>]*name="([^"]+)"[^>]*>(.*?)</select>', html, re.S):
        selected = re.search(r'<option[^>]*selected[^>]*value="([^"]*)"|<option[^>]*value="([^"]*)"[^>]*selected', body)
        if selected:
            values[name] = selected.group(1) or selected.group(2)
    values.pop("_continue_editing", None)
    values.pop("_add_another", None)
    return values


def test_role_change_is_audited_with_the_old_and_new_role(client, auth, app):
    auth.login("admin")
    with app.app_context():
        target = user("clerk1")
        target_id, station = target.id, target.station_id
    form = client.get(f"/admin/user/edit/?id={target_id}").get_data(as_text=True)
    data = {
        "csrf_token": CSRF_RE.search(form).group(1),
        "username": "clerk1",
        "display_name": "李静",
        "role": "clerk",
        "station": str(station),
        "active": "y",
        "new_password": "",
        "phone": "13900001111",
    }
    assert client.post(f"/admin/user/edit/?id={target_id}", data=data).status_code == 302
    (line,) = _lines(app, "user.changed")
    assert line.target_id == str(target_id)
    assert line.details["changes"]["phone"] == ["***", "***"]  # the value itself is not logged


def test_audit_page_is_for_administrators_and_exports_csv(client, auth, app):
    with app.app_context():
        record_audit(None, "login.failed", target="mallory")
        db.session.commit()
    auth.login("clerk1")
    assert client.get("/admin/auditevent/").status_code == 403
    auth.logout()
    auth.login("admin")
    page = client.get("/admin/auditevent/?search=mallory")
    assert page.status_code == 200 and "mallory" in page.get_data(as_text=True)
    assert client.get("/admin/auditevent/new/").status_code in (302, 403, 404)
    exported = client.get("/admin/auditevent/export/csv/?search=login")
    rows = list(csv.reader(io.StringIO(exported.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][:3] == ["时间", "操作人", "操作"]
    assert any("mallory" in row for row in rows[1:])
    assert _lines(app, "data.exported")[-1].details["table"] == "audit_event"


def test_cli_token_creation_is_audited(runner, app):
    result = runner.invoke(args=["create-token", "clerk1", "--name", "hotline"])
    assert result.exit_code == 0, result.output
    (line,) = _lines(app, "token.created")
    assert line.details["via"] == "cli" and result.output.strip() not in str(line.details)
    with app.app_context():
        db.session.execute(text("DELETE FROM api_token"))
        db.session.commit()


def test_open311_key_issue_is_audited(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/open311key/new/")
    response = client.post("/admin/open311key/new/", data={"csrf_token": token, "name": "市民App"})
    assert response.status_code == 200 and "o311_" in response.get_data(as_text=True)
    (line,) = _lines(app, "open311_key.created")
    assert line.actor_name == "admin" and line.details["prefix"].startswith("o311_")


def test_audit_page_filters_by_day(client, auth, app):
    from datetime import timedelta

    from app.core.timeutil import to_local, utcnow

    with app.app_context():
        record_audit(None, "login.failed", target="trudy")
        db.session.commit()
    auth.login("admin")
    today = to_local(utcnow()).date()
    # the day filters are the first two (created_at); a malformed day is ignored, never a 500
    assert client.get("/admin/auditevent/?flt0_0=not-a-day").status_code == 200
    found = client.get(f"/admin/auditevent/?flt0_0={today}").get_data(as_text=True)
    none = client.get(f"/admin/auditevent/?flt0_0={today + timedelta(days=1)}").get_data(as_text=True)
    assert "trudy" in found and "trudy" not in none
    before = client.get(f"/admin/auditevent/?flt1_1={today - timedelta(days=1)}").get_data(as_text=True)
    assert "trudy" not in before
