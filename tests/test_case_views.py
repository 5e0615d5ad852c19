"""The case pages as users use them: a clerk registers, a grid worker and a firm act, a resident signs off."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.cases.models import Case
from app.extensions import db
from app.org.models import Building, Compound
from tests.conftest import csrf_token
from tests.factories import PNG, make_case  # PNG: a real image (uploads are re-encoded)


def _ids(app, compound_code="X01", building_name="3栋"):
    with app.app_context():
        compound = db.session.scalar(select(Compound).where(Compound.code == compound_code))
        building = db.session.scalar(
            select(Building).where(Building.compound_id == compound.id, Building.name == building_name)
        )
        return str(compound.id), str(building.id)


def _intake(app, **overrides):
    compound, building = _ids(app)
    data = {
        "category": "water_leak",
        "compound": compound,
        "building": building,
        "unit": "2单元301",
        "description": "厨房天花板漏水，楼上无人",
        "resident_name": "陈先生",
        "resident_phone": "13812345678",
        "urgency": "",
        "channel": "window",
    }
    data.update(overrides)
    return data


def _case(app, ref):
    with app.app_context():
        return db.session.scalar(select(Case).where(Case.ref == ref))


def test_clerk_registers_a_case_and_gets_a_receipt(client, auth, app):
    auth.login("clerk1")
    page = client.get("/cases/new")
    assert page.status_code == 200 and "阳光花园" in page.get_data(as_text=True)
    assert "清溪雅苑" not in page.get_data(as_text=True)  # another community's compound is not offered
    response = auth.post("/cases/new", _intake(app), form_page="/cases/new")
    assert response.status_code == 302
    ref = re.search(r"/cases/(KSM-\d{8}-\d{4})", response.headers["Location"]).group(1)
    case = _case(app, ref)
    assert case.state == "grid_assigned" and case.unit == "2单元301" and case.channel == "window"
    body = client.get(response.headers["Location"]).get_data(as_text=True)
    assert ref in body and "王磊" in body and "待网格员签收" in body
    receipt = client.get(f"/cases/{ref}/receipt").get_data(as_text=True)
    code = case.signoff_token
    assert ref in receipt and f"{code[:4]}-{code[4:]}" in receipt and "/track" in receipt


def test_intake_errors_keep_what_was_typed(client, auth, app):
    auth.login("clerk1")
    response = auth.post("/cases/new", _intake(app, resident_phone="12345", description="漏"), form_page="/cases/new")
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "手机号码为以 1 开头的 11 位数字" in body
    assert "陈先生" in body and 'value="12345"' in body and "2单元301" in body


def test_clerk_cannot_register_in_another_community(client, auth, app):
    auth.login("clerk1")
    compound, _ = _ids(app, "X05", "1栋")
    response = auth.post("/cases/new", _intake(app, compound=compound, building=""), form_page="/cases/new")
    assert response.status_code == 422
    with app.app_context():
        assert db.session.scalar(select(Case).where(Case.compound_id == int(compound))) is None


def test_duplicate_hint_lets_the_clerk_link_instead_of_creating(client, auth, app):
    existing = make_case(category="water_leak", building="3栋")
    auth.login("clerk1")
    response = auth.post("/cases/new", _intake(app), form_page="/cases/new")
    assert response.status_code == 409
    body = response.get_data(as_text=True)
    assert existing in body and "confirm_new" in body
    with app.app_context():
        assert db.session.scalar(select(Case).where(Case.ref != existing, Case.unit == "2单元301")) is None
    # link: the caller's report is linked to the existing case, with its own reference
    fields = dict(
        re.findall(
            r'<input type="hidden" name="(resident_name|resident_phone|description|channel|unit)" '
            r'value="([^"]*)"',
            body,
        )
    )
    assert fields["resident_phone"] == "13812345678" and fields["description"] == "厨房天花板漏水，楼上无人"
    linked = auth.post(f"/cases/{existing}/reports", fields, form_page="/cases/new")
    assert linked.status_code == 302 and "report=KSM-" in linked.headers["Location"]
    assert "陈先生" in client.get(f"/cases/{existing}").get_data(as_text=True)
    # or confirm it is new
    created = auth.post("/cases/new", _intake(app, confirm_new="y"), form_page="/cases/new")
    assert created.status_code == 302


def test_grid_worker_acts_from_the_case_page(client, auth, app):
    ref = make_case("grid_assigned")
    auth.login("grid1")
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert f'action="/cases/{ref}/actions/grid_accept"' in page
    assert 'data-state="grid_assigned" aria-current="step"' in page  # the diagram marks the current step
    version = _case(app, ref).version
    response = auth.post(f"/cases/{ref}/actions/grid_accept", {"version": version}, form_page=f"/cases/{ref}")
    assert response.status_code == 302
    assert _case(app, ref).state == "grid_handling"
    # dispatch with a note
    response = auth.post(f"/cases/{ref}/actions/dispatch_to_firm", {"note": "楼上管道破裂"}, form_page=f"/cases/{ref}")
    assert response.status_code == 302 and _case(app, ref).state == "firm_dispatched"


def test_a_refused_action_explains_and_keeps_the_input(client, auth, app):
    ref = make_case("firm_dispatched")
    auth.login("firm1")
    response = auth.post(
        f"/cases/{ref}/actions/firm_return", {"note": "不属于我们的服务范围"}, form_page=f"/cases/{ref}"
    )
    # post/redirect/get: back to the case page with the message and the input kept
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/cases/{ref}#actions")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "退单原因" in body and "不属于我们的服务范围" in body
    assert "不属物业服务范围" in body and "not_our_service (" not in body  # labels, never internal codes
    assert _case(app, ref).state == "firm_dispatched"
    # a refresh shows the plain case page: nothing re-submitted, the message is gone
    again = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "不属于我们的服务范围" not in again and _case(app, ref).state == "firm_dispatched"
    wrong = auth.post(f"/cases/{ref}/actions/firm_complete", {"result": "x"}, form_page=f"/cases/{ref}")
    assert wrong.status_code == 303
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "待物业接单" in page and "接单" in page


def test_stale_page_gets_a_conflict_not_a_double_action(client, auth, app):
    ref = make_case("grid_assigned")
    auth.login("grid1")
    stale = _case(app, ref).version
    auth.post(f"/cases/{ref}/actions/grid_accept", {"version": stale}, form_page=f"/cases/{ref}")
    again = auth.post(f"/cases/{ref}/actions/grid_accept", {"version": stale}, form_page=f"/cases/{ref}")
    assert again.status_code == 303
    assert "网格员处置中" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_out_of_scope_users_get_404(client, auth):
    ref = make_case("grid_handling")
    for username in ("grid2", "firm1", "clerk2", "supervisor2"):
        auth.login(username)
        assert client.get(f"/cases/{ref}").status_code == 404, username
        # the receipt (with the resident's sign-off link) is only for clerks and grid workers of the area
        assert client.get(f"/cases/{ref}/receipt").status_code in (403, 404)
        auth.logout()


def test_firm_sees_a_masked_phone(client, auth):
    ref = make_case("firm_dispatched", resident_phone="13912348765")
    auth.login("firm1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "139****8765" in body and "13912348765" not in body
    auth.logout()
    auth.login("clerk1")
    assert "13912348765" in client.get(f"/cases/{ref}").get_data(as_text=True)


def test_photos_upload_and_download_respect_scope(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    response = client.post(
        f"/cases/{ref}/actions/firm_complete",
        data={
            "csrf_token": csrf_token(client, f"/cases/{ref}"),
            "result": "已更换阀门",
            "photos": [(__import__("io").BytesIO(PNG), "after.png")],
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    link = re.search(rf"/cases/{ref}/attachments/(\d+)", page).group(0)
    image = client.get(link)
    assert image.status_code == 200 and image.data == PNG and image.mimetype == "image/png"
    auth.logout()
    auth.login("firm2")
    assert client.get(link).status_code == 404


def test_resident_signs_off_through_the_link(client, app):
    ref = make_case("awaiting_signoff")
    token = _case(app, ref).signoff_token
    page = client.get(f"/s/{token}")
    assert page.status_code == 200 and ref in page.get_data(as_text=True) and "已修复" in page.get_data(as_text=True)
    assert "13812345678" not in page.get_data(as_text=True)
    missing = client.post(f"/s/{token}", data={"csrf_token": csrf_token(client, f"/s/{token}"), "contacted": "yes"})
    assert missing.status_code == 422 and "满意度" in missing.get_data(as_text=True)
    done = client.post(
        f"/s/{token}",
        data={
            "csrf_token": csrf_token(client, f"/s/{token}"),
            "contacted": "yes",
            "resolved": "yes",
            "satisfaction": "satisfied",
            "comment": "很及时",
        },
    )
    assert done.status_code == 200 and "已办结" in done.get_data(as_text=True)
    case = _case(app, ref)
    assert case.state == "closed" and case.resolution == "resolved_satisfied"
    assert client.get("/s/not-a-real-token").status_code == 404


def test_resident_tracks_a_case_with_reference_and_phone_digits(client):
    ref = make_case("firm_processing", resident_phone="13955551234")
    token = csrf_token(client, "/track")
    wrong = client.post("/track", data={"csrf_token": token, "ref": ref, "last4": "0000"})
    assert wrong.status_code == 404 and "物业处理中" not in wrong.get_data(as_text=True)
    right = client.post("/track", data={"csrf_token": token, "ref": ref.lower(), "last4": "1234"})
    body = right.get_data(as_text=True)
    assert right.status_code == 200 and "物业处理中" in body and "13955551234" not in body


def test_case_list_is_scoped_filtered_and_paged(client, auth):
    mine = [make_case("grid_handling") for _ in range(3)]
    other = make_case("grid_handling", compound="X05")
    auth.login("grid1")
    body = client.get("/cases").get_data(as_text=True)
    assert all(ref in body for ref in mine) and other not in body
    filtered = client.get("/cases?state=closed").get_data(as_text=True)
    assert mine[0] not in filtered and "没有符合筛选条件的诉求" in filtered
    bad = client.get("/cases?state=nonsense")
    assert bad.status_code == 302


def test_supervisor_reassigns_from_the_case_page(client, auth, app):
    ref = make_case("grid_handling")
    auth.login("supervisor1")
    with app.app_context():
        from tests.factories import user

        grid2 = str(user("grid2").id)
    form_page = f"/cases/{ref}"
    options = re.findall(r'<option value="(\d+)"[^>]*>([^<]*)</option>', client.get(form_page).get_data(as_text=True))
    offered = {name.split(" · ")[0] for _value, name in options}
    assert "刘芳（网格员）" in offered and "王磊（网格员）" in offered  # grid1 and grid2: the supervisor's community
    assert "赵强（网格员）" not in offered  # grid3 works in another community
    missing = client.post(
        f"/cases/{ref}/reassign", data={"csrf_token": csrf_token(client, form_page), "reassign-grid_worker": grid2}
    )
    assert missing.status_code == 303
    kept = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "请填写改派原因" in kept
    done = client.post(
        f"/cases/{ref}/reassign",
        data={"csrf_token": csrf_token(client, form_page), "reassign-grid_worker": grid2, "reassign-note": "休假调整"},
    )
    assert done.status_code == 302
    assert _case(app, ref).grid_id is not None
    assert "休假调整" in client.get(f"/cases/{ref}").get_data(as_text=True)


def test_diagram_and_workflow_admin_page(client, auth):
    ref = make_case("firm_processing")
    auth.login("firm1")
    svg = client.get(f"/cases/{ref}/diagram.svg")
    assert svg.mimetype == "image/svg+xml"
    assert b'data-state="firm_processing" aria-current="step"' in svg.data
    assert b'wf-edge-now" data-triggers="firm_complete"' in svg.data
    auth.logout()
    auth.login("admin")
    page = client.get("/admin/workflows/")
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and body.count("<svg") == 3 and "先议事项" in body
    auth.logout()
    auth.login("clerk1")
    assert client.get("/admin/workflows/").status_code == 403
