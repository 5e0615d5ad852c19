"""A faster intake: phone first with the caller's history, a category picker that finds 电梯故障 by
``dt``, the duplicate hint while typing, the first invalid field focused, a photo from the camera."""

from __future__ import annotations

import io
import re

from sqlalchemy import select

from app.cases.models import Attachment, Case
from app.extensions import db
from app.org.models import Compound
from tests.factories import PNG, make_case


def _compound_id(app, code):
    with app.app_context():
        return db.session.scalar(select(Compound.id).where(Compound.code == code))


def test_intake_page_starts_on_the_phone_and_categories_know_their_pinyin(client, auth):
    auth.login("clerk1")
    body = client.get("/cases/new").get_data(as_text=True)
    assert re.search(r'id="resident_phone"[^>]*autofocus|autofocus[^>]*id="resident_phone"', body)
    assert body.index('id="resident_phone"') < body.index('id="category"') < body.index('id="description"')
    lift = re.search(r'<option value="lift_fault"[^>]*>', body).group(0)
    assert "diantiguzhang" in lift and " dtgz" in lift and 'data-workflow="' in lift and 'data-urgency="' in lift
    assert 'accept="image/*" capture="environment"' in body
    assert "<script>" not in body  # no inline code (CSP); behaviour lives in static/js/intake.js


def test_caller_history_is_scoped_and_fills_name_and_compound(client, auth, app):
    mine = make_case("grid_handling", resident_phone="13966667777")
    other = make_case("grid_handling", compound="X05", resident_phone="13966667777")
    auth.login("clerk1")
    data = client.get("/cases/callers?phone=139-6666-7777").get_json()
    refs = [c["ref"] for c in data["cases"]]
    assert mine in refs and other not in refs  # another community's case stays hidden
    assert data["name"] == "陈先生" and data["compound_id"] == _compound_id(app, "X01")
    assert client.get("/cases/callers?phone=12").get_json() == {
        "cases": [],
        "name": None,
        "compound_id": None,
        "building_id": None,
        "unit": None,
    }
    auth.logout()
    auth.login("firm1")
    assert client.get("/cases/callers?phone=13966667777").status_code == 403


def test_duplicate_hint_as_soon_as_category_and_compound_are_chosen(client, auth, app):
    existing = make_case("grid_assigned", category="water_leak")
    auth.login("clerk1")
    x01 = _compound_id(app, "X01")
    data = client.get(f"/cases/duplicates?category=water_leak&compound={x01}").get_json()
    assert [c["ref"] for c in data["cases"]] == [existing]
    assert client.get(f"/cases/duplicates?category=noise&compound={x01}").get_json() == {"cases": []}
    x05 = _compound_id(app, "X05")  # outside the clerk's community: nothing, not an error
    assert client.get(f"/cases/duplicates?category=water_leak&compound={x05}").get_json() == {"cases": []}
    assert client.get("/cases/duplicates?category=&compound=abc").get_json() == {"cases": []}


def test_first_invalid_field_is_focused(client, auth):
    auth.login("clerk1")
    from tests.conftest import csrf_token

    token = csrf_token(client, "/cases/new")
    response = client.post("/cases/new", data={"csrf_token": token, "resident_phone": "13812345678"})
    body = response.get_data(as_text=True)
    assert response.status_code == 422
    assert re.search(r'autofocus[^>]*id="resident_name"|id="resident_name"[^>]*autofocus', body)
    assert not re.search(r'autofocus[^>]*id="resident_phone"|id="resident_phone"[^>]*autofocus', body)


def test_a_photo_from_the_camera_is_kept_with_the_new_case(client, auth, app):
    from tests.conftest import csrf_token

    auth.login("clerk1")
    token = csrf_token(client, "/cases/new")
    response = client.post(
        "/cases/new",
        data={
            "csrf_token": token,
            "resident_phone": "13812345678",
            "resident_name": "陈先生",
            "category": "noise",
            "compound": str(_compound_id(app, "X02")),
            "description": "楼上装修噪音，晚上十点还在施工",
            "channel": "window",
            "photos": [(io.BytesIO(PNG), "noise.png")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    ref = re.search(r"/cases/(KSM-\d{8}-\d{4})", response.headers["Location"]).group(1)
    with app.app_context():
        case = db.session.scalar(select(Case).where(Case.ref == ref))
        assert db.session.scalar(select(Attachment).where(Attachment.case_id == case.id)).filename == "noise.png"
    bad = client.post(
        "/cases/new",
        data={
            "csrf_token": token,
            "resident_phone": "13812345678",
            "resident_name": "陈先生",
            "category": "pets",
            "compound": str(_compound_id(app, "X02")),
            "description": "小区里有狗没拴绳，吓到孩子",
            "channel": "window",
            "photos": [(io.BytesIO(b"not an image"), "dog.png")],
        },
        content_type="multipart/form-data",
    )
    assert bad.status_code in (400, 415, 422)
    with app.app_context():
        assert db.session.scalar(select(Case).where(Case.description == "小区里有狗没拴绳，吓到孩子")) is None


def test_building_field_has_a_type_ahead_over_the_buildings_of_each_compound(client, auth, app):
    from app.org.models import Building

    auth.login("clerk1")
    body = client.get("/cases/new").get_data(as_text=True)
    assert re.search(r'<input[^>]*id="building-search"[^>]*aria-controls="building"', body)
    assert '<label class="form-label" for="building-search">' in body
    with app.app_context():
        buildings = db.session.execute(select(Building.id, Building.compound_id)).all()
    tagged = dict(re.findall(r'<option value="(\d+)" data-compound="(\d+)"', body))
    assert tagged and all(tagged[str(b)] == str(c) for b, c in buildings if str(b) in tagged)
    assert "<script>" not in body and "onkeydown" not in body and "oninput" not in body
