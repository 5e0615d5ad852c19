"""Residents' privacy: masked phones revealed with a reason, export and anonymisation, no phones in logs."""

from __future__ import annotations

import json
import logging

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.permissions import can_reveal_resident_phone, can_see_resident_phone
from app.cases.models import Case, CaseEvent
from app.extensions import db
from tests.conftest import csrf_token
from tests.factories import load, make_case, user

PHONE = "13912348765"


def test_one_predicate_decides_who_sees_the_phone(ctx):
    case = load(make_case("firm_processing", resident_phone=PHONE))
    assert can_see_resident_phone(user("clerk1"), case) and can_see_resident_phone(user("grid1"), case)
    assert can_see_resident_phone(user("supervisor1"), case) and can_see_resident_phone(user("admin"), case)
    assert not can_see_resident_phone(user("firm1"), case)
    assert can_reveal_resident_phone(user("firm1"), case)
    assert not can_reveal_resident_phone(user("firm2"), case)  # outside its scope
    assert not can_reveal_resident_phone(user("clerk1"), case)  # sees it anyway
    assert not can_see_resident_phone(None, case)


def test_firm_reveals_the_phone_with_a_reason_on_the_record(client, auth, app):
    ref = make_case("firm_processing", resident_phone=PHONE)
    auth.login("firm1")
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert PHONE not in page and "139****8765" in page
    form = client.get(f"/cases/{ref}/phone")
    assert form.status_code == 200 and PHONE not in form.get_data(as_text=True)
    token = csrf_token(client, f"/cases/{ref}/phone")
    missing = client.post(f"/cases/{ref}/phone", data={"csrf_token": token, "reason": ""})
    assert missing.status_code == 422 and PHONE not in missing.get_data(as_text=True)
    shown = client.post(f"/cases/{ref}/phone", data={"csrf_token": token, "reason": "约上门维修时间"})
    assert shown.status_code == 200 and f'href="tel:{PHONE}"' in shown.get_data(as_text=True)
    with app.app_context():
        case_id = db.session.scalar(select(Case.id).where(Case.ref == ref))
        event = db.session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.kind == "phone_revealed")
        )
        assert event.note == "约上门维修时间" and event.actor_name
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "phone.revealed"))
        assert line.actor_name == "firm1" and line.target_id == ref and PHONE not in json.dumps(line.details)
    history = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "约上门维修时间" in history and PHONE not in history  # the case page itself stays masked


def test_reveal_is_refused_outside_scope_and_pointless_for_others(client, auth):
    ref = make_case("firm_processing", resident_phone=PHONE)
    auth.login("firm2")
    assert client.get(f"/cases/{ref}/phone").status_code == 404
    auth.logout()
    auth.login("grid1")
    response = client.get(f"/cases/{ref}/phone")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/cases/{ref}")
    auth.logout()
    assert client.get(f"/cases/{ref}/phone").status_code == 302  # sign in first


def test_api_masks_the_phone_for_firms_through_the_same_predicate(client, app):
    from app.auth.services import create_token

    ref = make_case("firm_processing", resident_phone=PHONE)
    with app.app_context():
        _t, firm_secret = create_token(user("firm1"), "t")
        _t, grid_secret = create_token(user("grid1"), "t")
        db.session.commit()
    firm = client.get(f"/api/v1/cases/{ref}", headers={"Authorization": f"Bearer {firm_secret}"}).get_json()
    grid = client.get(f"/api/v1/cases/{ref}", headers={"Authorization": f"Bearer {grid_secret}"}).get_json()
    assert firm["resident"]["phone"] == "139****8765" and grid["resident"]["phone"] == PHONE


def test_admin_exports_everything_about_a_phone_and_it_is_audited(client, auth, app):
    ref = make_case("closed", resident_phone=PHONE)
    other = make_case("grid_assigned", resident_phone="13700001111")
    auth.login("admin")
    token = csrf_token(client, "/admin/resident-data/")
    exported = client.post(
        "/admin/resident-data/", data={"csrf_token": token, "phone": "139 1234 8765", "act": "export"}
    )
    assert exported.status_code == 200 and "attachment" in exported.headers["Content-Disposition"]
    data = json.loads(exported.get_data(as_text=True))
    assert [c["ref"] for c in data["cases"]] == [ref] and other not in exported.get_data(as_text=True)
    (case,) = data["cases"]
    assert case["resident_phone"] == PHONE and case["history"] and case["follow_ups"][0]["satisfaction"] == "satisfied"
    with app.app_context():
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "resident.exported"))
        assert line.details == {"phone": "139****8765", "cases": 1, "also_reported": 0}
    bad = client.post("/admin/resident-data/", data={"csrf_token": token, "phone": "12345", "act": "export"})
    assert bad.status_code == 422


def test_admin_anonymises_a_resident_and_the_figures_stay(client, auth, app):
    ref = make_case("closed", resident_phone=PHONE, description=f"漏水，联系 {PHONE} 陈先生")
    auth.login("admin")
    token = csrf_token(client, "/admin/resident-data/")
    unconfirmed = client.post("/admin/resident-data/", data={"csrf_token": token, "phone": PHONE, "act": "anonymise"})
    assert unconfirmed.status_code == 422
    with app.app_context():
        before = db.session.scalar(select(Case).where(Case.ref == ref))
        state, resolution = before.state, before.resolution
    done = client.post(
        "/admin/resident-data/", data={"csrf_token": token, "phone": PHONE, "act": "anonymise", "confirm": "y"}
    )
    assert done.status_code == 302
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        assert case.resident_phone is None and case.resident_phone_last4 is None and case.unit is None
        assert case.resident_name == "（已匿名）" and PHONE not in case.description and "陈先生" not in case.description
        assert "漏水" in case.description and (case.state, case.resolution) == (state, resolution)
        line = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "resident.anonymised"))
        assert line.details == {"phone": "139****8765", "cases": 1}


def test_residents_phones_never_reach_the_logs(client, auth, app, caplog):
    from app.auth.services import create_token

    caplog.set_level(logging.DEBUG)
    with app.app_context():
        _t, secret = create_token(user("clerk1"), "t")
        db.session.commit()
    # API intake, web intake, the whole life of a case with notifications, tracking, a sign-off
    api = client.post(
        "/api/v1/cases",
        json={
            "category": "water_leak",
            "description": "楼道水管漏水积水",
            "compound": "X01",
            "resident_name": "赵女士",
            "resident_phone": PHONE,
        },
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert api.status_code == 201, api.get_json()
    ref = make_case("closed", resident_phone=PHONE)
    token = csrf_token(client, "/track")
    client.post("/track", data={"csrf_token": token, "ref": ref, "last4": "8765"})
    client.post(
        "/open311/v2/requests.json",
        data={
            "api_key": "demo-open311-key",
            "service_code": "water_leak",
            "description": "井盖松动有响声",
            "phone": PHONE,
            "address_string": "阳光花园 3栋",
        },
    )
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert caplog.records, "something was logged, so the check means something"
    assert PHONE not in logged and "139 1234 8765" not in logged


def test_a_phone_in_any_log_line_is_masked(app, caplog):
    from app.core.redact import mask_phones

    caplog.set_level(logging.INFO)
    logging.getLogger("werkzeug").info('127.0.0.1 - - "GET /cases?q=%s HTTP/1.1" 200 -', PHONE)
    logging.getLogger("ksm.notify").warning("SMS to 139 1234 8765 failed")
    logging.getLogger("gunicorn.access").info("%(r)s", {"r": f"GET /cases?q={PHONE}"})
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert PHONE not in text and "139 1234 8765" not in text and text.count("139****8765") == 3
    assert mask_phones("工单 KSM-20261201-0001，电话 13812345678。") == "工单 KSM-20261201-0001，电话 138****5678。"
    assert mask_phones("ref 20261201123456789") == "ref 20261201123456789"  # longer digit runs are not phones


def test_api_reveal_for_firms_with_a_reason(client, app):
    from app.auth.services import create_token

    ref = make_case("firm_processing", resident_phone=PHONE)
    with app.app_context():
        _t, firm = create_token(user("firm1"), "t")
        _t, grid = create_token(user("grid1"), "t")
        db.session.commit()
    url = f"/api/v1/cases/{ref}/phone-reveals"
    missing = client.post(url, json={}, headers={"Authorization": f"Bearer {firm}"})
    assert missing.status_code == 422 and missing.get_json()["error"]["field"] == "reason"
    shown = client.post(url, json={"reason": "约上门维修时间"}, headers={"Authorization": f"Bearer {firm}"})
    assert shown.status_code == 201 and shown.get_json() == {"phone": PHONE}
    refused = client.post(url, json={"reason": "想看看号码"}, headers={"Authorization": f"Bearer {grid}"})
    assert refused.status_code == 403
    with app.app_context():
        lines = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "phone.revealed")).all()
        assert [line.actor_name for line in lines] == ["firm1"]


def test_admin_preview_shows_local_times_and_state_labels(client, auth, app):
    import re

    ref = make_case("closed", resident_phone=PHONE)
    with app.app_context():
        from app.cases.models import Case
        from app.core.timeutil import to_local

        created = to_local(db.session.scalar(select(Case.created_at).where(Case.ref == ref))).strftime("%Y-%m-%d %H:%M")
    auth.login("admin")
    token = csrf_token(client, "/admin/resident-data/")
    body = client.post("/admin/resident-data/", data={"csrf_token": token, "phone": PHONE, "act": "preview"}).get_data(
        as_text=True
    )
    row = re.search(rf'<tr data-ref="{ref}">(.*?)</tr>', body, re.S).group(1)
    assert f"<td>{created}</td>" in row and "<td>已办结</td>" in row
    assert "+00:00" not in row and "<td>closed</td>" not in row
