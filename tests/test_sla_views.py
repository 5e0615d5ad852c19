"""Timer actions and time-limit settings as users reach them in the browser."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.cases.models import Case
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.sla.models import HolidayOverride, TimeLimitPolicy
from tests.conftest import csrf_token
from tests.factories import make_case


def _case(app, ref):
    with app.app_context():
        return db.session.scalar(select(Case).where(Case.ref == ref))


def test_case_page_shows_the_deadline_and_the_card(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    due = to_local(_case(app, ref).due_at).strftime("%Y-%m-%d %H:%M")
    assert 'id="timer"' in body and due in body
    assert "proposed_due_at" in body  # the handler may ask for more time


def test_handler_asks_for_an_extension_and_supervisor_approves(client, auth, app):
    ref = make_case("firm_processing")
    proposed = to_local(_case(app, ref).due_at + timedelta(days=5)).strftime("%Y-%m-%dT%H:%M")
    auth.login("firm1")
    response = client.post(
        f"/cases/{ref}/extension",
        data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "proposed_due_at": proposed, "reason": "需要等待厂家"},
    )
    assert response.status_code == 302
    assert "需要等待厂家" in client.get(f"/cases/{ref}").get_data(as_text=True)
    auth.logout()
    auth.login("supervisor1")
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert 'value="approve"' in page
    client.post(
        f"/cases/{ref}/extension/decide",
        data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "decision": "approve"},
    )
    assert to_local(_case(app, ref).due_at).strftime("%Y-%m-%dT%H:%M") == proposed


def test_bad_extension_input_is_explained(client, auth):
    ref = make_case("firm_processing")
    auth.login("firm1")
    response = client.post(
        f"/cases/{ref}/extension",
        data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "proposed_due_at": "not a date", "reason": "x"},
        follow_redirects=True,
    )
    assert response.status_code == 422 and "新的期限" in response.get_data(as_text=True)
    assert "2026-12-01 17:30" in response.get_data(as_text=True)  # says how to write the date


def test_supervisor_urges_and_shelves_from_the_case_page(client, auth, app):
    ref = make_case("firm_dispatched")
    auth.login("supervisor1")
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert f'action="/cases/{ref}/urge"' in page
    client.post(f"/cases/{ref}/urge", data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "note": "今天必须接单"})
    review = to_local(utcnow() + timedelta(days=20)).strftime("%Y-%m-%dT%H:%M")
    client.post(
        f"/cases/{ref}/shelve",
        data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "reason": "需业主大会表决", "review_at": review},
    )
    case = _case(app, ref)
    assert case.shelved and case.due_at is None
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "今天必须接单" in body and "需业主大会表决" in body
    auth.logout()
    auth.login("firm1")
    refused = client.post(f"/cases/{ref}/urge", data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "note": "x"})
    assert refused.status_code == 403 and "只有本辖区的督办人员可以催办" in refused.get_data(as_text=True)
    assert _case(app, ref).shelved  # a firm's attempt changed nothing


def test_admin_edits_a_time_limit_with_validation(client, auth, app):
    auth.login("admin")
    with app.app_context():
        policy = db.session.scalar(
            select(TimeLimitPolicy).where(TimeLimitPolicy.state == "grid_assigned", TimeLimitPolicy.urgency == "normal")
        )
    page = client.get("/admin/timelimitpolicy/")
    assert page.status_code == 200 and "2 个工作小时" in page.get_data(as_text=True)  # grid_assigned, normal
    url = f"/admin/timelimitpolicy/edit/?id={policy.id}"
    bad = client.post(url, data={"csrf_token": csrf_token(client, url), "amount": "0", "unit": "working_minutes"})
    assert bad.status_code == 200
    ok = client.post(url, data={"csrf_token": csrf_token(client, url), "amount": "180", "unit": "working_minutes"})
    assert ok.status_code == 302
    with app.app_context():
        assert db.session.get(TimeLimitPolicy, policy.id).amount == 180


def test_admin_adds_a_holiday_override_and_sees_the_missing_year_banner(client, auth, app):
    auth.login("admin")
    body = client.get("/admin/").get_data(as_text=True)
    page = client.get("/cases").get_data(as_text=True)
    this_year = to_local(utcnow()).year
    from app.sla.calendar import WorkCalendar

    expected = [y for y in (this_year, this_year + 1) if not WorkCalendar().year_published(y)]
    for year in expected:
        assert f'data-missing-year="{year}"' in page
    url = "/admin/holidayoverride/new/"
    response = client.post(
        url, data={"csrf_token": csrf_token(client, url), "day": "2027-01-01", "note": "元旦（国务院通知）"}
    )
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalar(select(HolidayOverride).where(HolidayOverride.note == "元旦（国务院通知）"))
        assert row is not None and not row.is_working
    missing = client.post(url, data={"csrf_token": csrf_token(client, url), "day": "2027-01-02", "note": ""})
    assert missing.status_code == 200
    assert body  # the admin overview renders


def test_business_hours_are_validated(client, auth, app):
    auth.login("admin")
    url = "/admin/businesshours/edit/?id=1"
    bad = client.post(url, data={"csrf_token": csrf_token(client, url), "periods": "12:00-08:00"})
    assert bad.status_code == 200
    good = client.post(url, data={"csrf_token": csrf_token(client, url), "periods": "09:00-12:00,13:30-17:30"})
    assert good.status_code == 302
