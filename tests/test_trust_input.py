"""Defect 3: control characters are refused at the edge with a clear 400, never a 500.

The examples are those of the attack report; on PostgreSQL (which refuses NUL in text) each of them
answered 500 before the hook in ``app/core/hygiene.py``. Run with ``TEST_DATABASE_URL`` to see that.
"""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.cases.models import Case, CaseEvent
from app.core.hygiene import has_control
from app.extensions import db
from app.org.models import Compound
from tests.conftest import csrf_token
from tests.factories import make_case

MESSAGE_ZH = "控制字符"


def _assert_html_400(response):
    assert response.status_code == 400, response.status_code
    assert MESSAGE_ZH in response.get_data(as_text=True)


def test_login_with_nul_in_the_username(client):
    response = client.post("/login", data={"username": "a\x00b", "password": "x", "csrf_token": csrf_token(client)})
    _assert_html_400(response)


@pytest.mark.parametrize("path", ["/s/%00", "/s/abc%00def", "/track?ref=KSM%00", "/cases?q=%00", "/login?next=%00"])
def test_nul_in_path_or_query_of_public_and_staff_pages(client, auth, path):
    auth.login("clerk1")
    _assert_html_400(client.get(path))


def test_track_form_with_nul_in_the_reference(client):
    token = csrf_token(client, "/track")
    _assert_html_400(
        client.post("/track", data={"ref": "KSM%00".replace("%00", "\x00"), "last4": "5678", "csrf_token": token})
    )


@pytest.mark.parametrize(
    "path",
    [
        "/open311/v2/requests/%00.json",
        "/open311/v2/requests/%00.xml",
        "/open311/v2/services/%00.json",
        "/open311/v2/services/%00.xml",
        "/open311/v2/tokens/%00.json",
        "/open311/v2/tokens/%00.xml",
        "/open311/v2/requests.json?service_request_id=%00",
    ],
)
def test_open311_answers_its_error_list(client, path):
    response = client.get(path)
    assert response.status_code == 400
    if path.split("?")[0].endswith(".json"):
        body = response.get_json()
        assert isinstance(body, list) and body[0]["code"] == 400 and MESSAGE_ZH in body[0]["description"]
    else:
        text = response.get_data(as_text=True)
        assert "<errors><error><code>400</code><description>" in text


def test_open311_post_with_nul_in_a_form_value(client):
    response = client.post(
        "/open311/v2/requests.json",
        data={"api_key": "demo-open311-key", "service_code": "water_leak", "description": "漏\x00水"},
    )
    assert response.status_code == 400 and response.get_json()[0]["code"] == 400


def test_api_json_string_with_nul_is_refused_in_the_api_shape(client, app):
    from app.auth.services import create_token
    from tests.factories import user

    with app.app_context():
        _token, secret = create_token(user("clerk1"), "t")
        db.session.commit()
    response = client.post(
        "/api/v1/cases",
        json={"category": "water_leak", "description": "漏\u0000水", "resident": {"name": "王"}},
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["code"] == "validation_error" and error["field"] == "description"
    assert error["details"]["reason"] == "control_character"


def _intake(app, **changes):
    with app.app_context():
        compound_id = db.session.scalar(select(Compound.id).where(Compound.code == "X01"))
    data = {
        "category": "water_leak",
        "compound": compound_id,
        "description": "楼道漏水",
        "resident_name": "王",
        "resident_phone": "13800000000",
        "channel": "window",
        "confirm_new": "y",
        "unit": "3-201",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("field", ["unit", "resident_name", "building", "description"])
def test_intake_fields_with_nul_write_nothing(client, auth, app, field):
    auth.login("clerk1")
    with app.app_context():
        before = db.session.scalar(select(func.count(Case.id)))
    response = auth.post("/cases/new", _intake(app, **{field: "a\x00b"}), form_page="/cases/new")
    _assert_html_400(response)
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id))) == before


def test_intake_accepts_line_breaks_and_tabs_in_the_description(client, auth, app):
    auth.login("clerk1")
    response = auth.post("/cases/new", _intake(app, description="第一行\r\n第二行\t完"), form_page="/cases/new")
    assert response.status_code == 302


def test_case_forms_with_nul(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("supervisor1")
    page = f"/cases/{ref}"
    with app.app_context():
        events = db.session.scalar(select(func.count(CaseEvent.id)))
    _assert_html_400(auth.post(f"/cases/{ref}/notes", {"note": "a\x00b"}, form_page=page))
    _assert_html_400(auth.post(f"/cases/{ref}/urge", {"note": "快\x00点"}, form_page=page))
    _assert_html_400(auth.post(f"/cases/{ref}/shelve", {"reason": "a\x00b", "review_on": "2027-01-01"}, form_page=page))
    with app.app_context():
        assert db.session.scalar(select(func.count(CaseEvent.id))) == events


def test_upload_named_with_nul(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    data = {
        "csrf_token": csrf_token(client, f"/cases/{ref}"),
        "file": (io.BytesIO(b"\x89PNG\r\n\x1a\n"), "a\x00b.png"),
    }
    response = client.post(f"/cases/{ref}/attachments", data=data, content_type="multipart/form-data")
    _assert_html_400(response)


def test_admin_form_and_list_with_nul(client, auth):
    auth.login("admin")
    token = csrf_token(client, "/admin/category/new/")
    response = client.post("/admin/category/new/", data={"csrf_token": token, "code": "x1", "name": "a\x00b"})
    _assert_html_400(response)
    _assert_html_400(client.get("/admin/user/?flt0_0=%00"))
    _assert_html_400(client.get("/admin/user/?search=%00"))


@pytest.mark.parametrize(
    ("text", "multiline", "refused"),
    [
        ("普通文字", False, False),
        ("a\tb", False, True),
        ("a\tb\r\nc", True, False),
        ("a\x00b", True, True),
        ("a\x7fb", True, True),
        ("a\x85b", True, True),
        ("a\x1bb", True, True),
    ],
)
def test_what_counts_as_a_control_character(text, multiline, refused):
    assert has_control(text, multiline=multiline) is refused


def test_api_path_with_a_control_character_is_a_404_in_the_api_shape(client, app):
    from app.auth.services import create_token
    from tests.factories import user

    with app.app_context():
        _token, secret = create_token(user("clerk1"), "t")
        db.session.commit()
    response = client.get("/api/v1/cases/KSM%00", headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
