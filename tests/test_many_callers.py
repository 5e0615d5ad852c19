"""One case, many callers: a second caller's report is linked to the open case, with its own reference,
receipt, tracking and sign-off; a supervisor can undo the link."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.cases import reports as case_reports
from app.cases.models import Case, CaseReport, FollowUp
from app.extensions import db
from tests.conftest import csrf_token
from tests.factories import load, make_case, user


def _link(client, auth, ref, **overrides):
    data = {
        "resident_name": "赵女士",
        "resident_phone": "13700001111",
        "description": "同一栋楼也在漏水，我家在5楼",
        "channel": "phone",
        "unit": "1单元502",
    }
    data.update(overrides)
    return auth.post(f"/cases/{ref}/reports", data, form_page=f"/cases/{ref}")


def test_second_caller_gets_own_reference_receipt_tracking_and_signoff(client, auth, app):
    ref = make_case("grid_handling")
    auth.login("clerk1")
    response = _link(client, auth, ref)
    assert response.status_code == 302
    report_ref = re.search(r"report=(KSM-\d{8}-\d{4})", response.headers["Location"]).group(1)
    assert report_ref != ref
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'id="callers"' in page and "赵女士" in page and report_ref in page
    receipt = client.get(f"/cases/{ref}/reports/{report_ref}/receipt").get_data(as_text=True)
    with app.app_context():
        report = db.session.scalar(select(CaseReport).where(CaseReport.ref == report_ref))
        code = report.signoff_token
    assert report_ref in receipt and f"{code[:4]}-{code[4:]}" in receipt and f"/track?ref={report_ref}" in receipt
    auth.logout()

    # tracking with the report's own reference shows the main case's handling
    token = csrf_token(client, "/track")
    body = client.post("/track", data={"csrf_token": token, "ref": report_ref, "last4": "1111"}).get_data(as_text=True)
    assert 'id="joined"' in body and ref in body and 'id="confirm-now"' not in body
    assert client.post("/track", data={"csrf_token": token, "ref": report_ref, "last4": "9999"}).status_code == 404

    # not done yet: the caller cannot sign off
    assert "can_answer" not in client.get(f"/s/{code}").get_data(as_text=True)
    early = client.post(
        f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "yes", "satisfaction": "satisfied"}
    )
    assert early.status_code == 409

    # the case follows its course; each caller signs off on their own
    with app.app_context():
        from app.cases import services

        case = load(ref)
        services.fire(case, "dispatch_to_firm", user("grid1"))
        services.fire(case, "firm_accept", user("firm1"))
        services.fire(case, "firm_complete", user("firm1"), inputs={"result": "已修复楼上管道"})
        db.session.commit()
    body = client.post("/track", data={"csrf_token": token, "ref": report_ref, "last4": "1111"}).get_data(as_text=True)
    assert f"/s/{code}" in body  # confirm now, with the caller's own code
    typed = client.post("/s", data={"csrf_token": token, "code": code.lower()})
    assert typed.status_code == 303 and typed.headers["Location"].endswith(f"/s/{code}")
    form = client.get(f"/s/{code}").get_data(as_text=True)
    assert "已修复楼上管道" in form and 'name="satisfaction"' in form
    done = client.post(
        f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "no", "satisfaction": "unsatisfied"}
    )
    assert done.status_code == 200
    with app.app_context():
        case = load(ref)
        assert case.state == "awaiting_signoff"  # a linked caller's answer does not move the case
        answers = db.session.scalars(select(FollowUp).where(FollowUp.case_id == case.id)).all()
        assert [(a.report_id is not None, a.satisfaction) for a in answers] == [(True, "unsatisfied")]
    again = client.post(
        f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "yes", "satisfaction": "satisfied"}
    )
    assert again.status_code == 409  # one answer per caller


def test_linking_is_scoped_and_needs_a_valid_caller(client, auth, app):
    ref = make_case("grid_handling")
    auth.login("firm1")
    assert _link(client, auth, ref).status_code in (403, 404)
    auth.logout()
    auth.login("clerk2")
    assert _link(client, auth, ref).status_code == 404
    auth.logout()
    auth.login("clerk1")
    bad = _link(client, auth, ref, resident_phone="123")
    assert bad.status_code == 303
    assert "11 位" in client.get(f"/cases/{ref}").get_data(as_text=True)
    closed = make_case("closed")
    assert _link(client, auth, closed).status_code == 303
    with app.app_context():
        assert db.session.scalar(select(CaseReport.id)) is None


def test_supervisor_undoes_a_link_and_the_report_becomes_a_case(client, auth, app):
    ref = make_case("grid_handling")
    with app.app_context():
        report = case_reports.link_report(
            load(ref),
            user("clerk1"),
            resident_name="赵女士",
            resident_phone="13700001111",
            description="隔壁楼也漏水了",
        )
        report_ref, code = report.ref, report.signoff_token
        db.session.commit()
    auth.login("grid1")
    assert client.post(f"/cases/{ref}/reports/{report_ref}/unlink", data={"note": "x"}).status_code in (400, 403)
    auth.logout()
    auth.login("supervisor1")
    missing = auth.post(f"/cases/{ref}/reports/{report_ref}/unlink", {"note": ""}, form_page=f"/cases/{ref}")
    assert missing.status_code == 303
    done = auth.post(f"/cases/{ref}/reports/{report_ref}/unlink", {"note": "不是同一栋楼"}, form_page=f"/cases/{ref}")
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/cases/{report_ref}")
    with app.app_context():
        split = db.session.scalar(select(Case).where(Case.ref == report_ref))
        assert split is not None and split.signoff_token == code and split.state == "grid_assigned"
        assert split.resident_phone == "13700001111"
    assert f'data-report="{report_ref}"' not in client.get(f"/cases/{ref}").get_data(as_text=True)


def test_urgent_case_alerts_firm_and_community_supervisor_at_registration(app):
    from app.notify.models import Notification

    with app.app_context():
        before = {u: _count(Notification, user(u).id) for u in ("firm1", "supervisor1", "firm2")}
    make_case("grid_assigned", category="lift_entrapment")
    with app.app_context():
        after = {u: _count(Notification, user(u).id) for u in ("firm1", "supervisor1", "firm2")}
        newest = db.session.scalar(
            select(Notification).where(Notification.user_id == user("firm1").id).order_by(Notification.id.desc())
        )
        assert newest.kind == "urgent"
    assert after["firm1"] == before["firm1"] + 1 and after["supervisor1"] == before["supervisor1"] + 1
    assert after["firm2"] == before["firm2"]


def _count(model, user_id):
    from sqlalchemy import func

    return db.session.scalar(select(func.count()).select_from(model).where(model.user_id == user_id))


def test_linked_callers_are_found_by_phone_and_reference(client, auth, app):
    ref = make_case("grid_handling")
    with app.app_context():
        report = case_reports.link_report(
            load(ref),
            user("clerk1"),
            resident_name="赵女士",
            resident_phone="13700002222",
            description="隔壁楼也漏水了",
        )
        report_ref = report.ref
        db.session.commit()
    auth.login("clerk1")
    for q in ("13700002222", report_ref):
        assert f'data-ref="{ref}"' in client.get("/cases", query_string={"q": q}).get_data(as_text=True), q
    history = client.get("/cases/callers?phone=13700002222").get_json()
    assert [c["ref"] for c in history["cases"]] == [ref]


def test_closing_as_duplicate_links_the_caller_to_the_original(client, auth, app):
    original = make_case("grid_handling", category="lift_fault")
    dup = make_case("grid_handling", category="lift_fault", resident_phone="13655553333")
    with app.app_context():
        code = load(dup).signoff_token
    auth.login("grid1")
    closed = auth.post(
        f"/cases/{dup}/actions/close_invalid",
        {"reason": "duplicate", "note": "同一部电梯", "duplicate_of": original},
        form_page=f"/cases/{dup}",
    )
    assert closed.status_code == 302
    page = client.get(f"/cases/{original}").get_data(as_text=True)
    assert f'data-report="{dup}"' in page  # the caller is listed among the original's callers
    assert "作为本诉求的重复诉求办结" in page  # the history says where the caller came from
    auth.logout()
    with app.app_context():
        report = db.session.scalar(select(CaseReport).where(CaseReport.ref == dup))
        assert report.case.ref == original and report.signoff_token == code and report.resident_phone_last4 == "3333"
        assert load(dup).state == "closed" and load(dup).resolution == "duplicate"

    # tracking with the caller's own reference shows the original's handling, not "closed as duplicate"
    token = csrf_token(client, "/track")
    body = client.post("/track", data={"csrf_token": token, "ref": dup, "last4": "3333"}).get_data(as_text=True)
    assert 'id="joined"' in body and original in body
    assert client.post("/track", data={"csrf_token": token, "ref": dup, "last4": "1111"}).status_code == 404
    early = client.post(
        f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "yes", "satisfaction": "satisfied"}
    )
    assert early.status_code == 409  # the original is not done yet

    with app.app_context():
        from app.cases import services

        case = load(original)
        services.fire(case, "dispatch_to_firm", user("grid1"))
        services.fire(case, "firm_accept", user("firm1"))
        services.fire(case, "firm_complete", user("firm1"), inputs={"result": "更换电梯门锁"})
        db.session.commit()
    typed = client.post("/s", data={"csrf_token": token, "code": code.lower()})
    assert typed.status_code == 303
    assert "更换电梯门锁" in client.get(typed.headers["Location"]).get_data(as_text=True)
    done = client.post(
        f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "yes", "satisfaction": "basic"}
    )
    assert done.status_code == 200
    with app.app_context():
        case, duplicate = load(original), load(dup)
        assert case.state == "awaiting_signoff" and duplicate.state == "closed"  # neither case moves
        answers = db.session.scalars(select(FollowUp).where(FollowUp.report_id.is_not(None))).all()
        assert [(a.case_id, a.satisfaction) for a in answers] == [(case.id, "basic")]


def test_undoing_a_duplicate_link_reopens_the_closed_case(client, auth, app):
    original = make_case("grid_handling", category="lift_fault")
    dup = make_case("grid_handling", category="lift_fault", resident_phone="13655554444")
    with app.app_context():
        from app.cases import services

        services.fire(
            load(dup),
            "close_invalid",
            user("grid1"),
            inputs={"reason": "duplicate", "note": "同一部", "duplicate_of": original},
        )
        db.session.commit()
    auth.login("supervisor1")
    done = auth.post(
        f"/cases/{original}/reports/{dup}/unlink", {"note": "不是同一部电梯"}, form_page=f"/cases/{original}"
    )
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/cases/{dup}")
    with app.app_context():
        reopened = load(dup)
        assert reopened.state == "grid_handling" and reopened.duplicate_of_id is None
        assert case_reports.linked_report_of(reopened) is None
        assert db.session.scalar(select(CaseReport).where(CaseReport.ref == dup)).active is False
    auth.logout()
    # closed as a duplicate again: the same report is linked again, no second row
    auth.login("grid1")
    again = auth.post(
        f"/cases/{dup}/actions/close_invalid",
        {"reason": "duplicate", "note": "确认同一部", "duplicate_of": original},
        form_page=f"/cases/{dup}",
    )
    assert again.status_code == 302
    with app.app_context():
        rows = db.session.scalars(select(CaseReport).where(CaseReport.ref == dup)).all()
        assert len(rows) == 1 and rows[0].active and rows[0].case.ref == original


def test_callers_linked_to_a_duplicate_move_to_the_original(app):
    from app.cases import services

    original = make_case("grid_handling", category="lift_fault")
    dup = make_case("grid_handling", category="lift_fault", resident_phone="13655556666")
    with app.app_context():
        third = case_reports.link_report(
            load(dup), user("clerk1"), resident_name="钱先生", resident_phone="13700003333", description="电梯又坏了"
        ).ref
        services.fire(
            load(dup),
            "close_invalid",
            user("grid1"),
            inputs={"reason": "duplicate", "note": "同一部", "duplicate_of": original},
        )
        db.session.commit()
        refs = [r.ref for r in case_reports.reports_of(load(original))]
        assert refs == [third, dup] or sorted(refs) == sorted([third, dup])
        assert case_reports.reports_of(load(dup)) == []
        links = [e.payload["report"] for e in services.events_of(load(original)) if e.kind == "link"]
        assert sorted(links) == sorted([third, dup])
