"""Defects found in review, each pinned by a test: scope leaks, 500s on odd input, lost input."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.cases import services
from app.cases.models import Case
from app.extensions import db
from app.notify.models import Notification
from app.sla import services as sla
from app.sla.models import ExtensionRequest
from tests.conftest import csrf_token
from tests.factories import load, make_case, user


def _case(app, ref):
    with app.app_context():
        return db.session.scalar(select(Case).where(Case.ref == ref))


@pytest.mark.parametrize("username", ["firm1", "branch1", "supervisor1"])
def test_only_those_who_record_sign_offs_see_the_residents_link(client, auth, username):
    ref = make_case("awaiting_signoff")
    auth.login(username)
    assert client.get(f"/cases/{ref}/receipt").status_code == 403
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "/s/" not in page


def test_a_firm_sees_a_reassigned_case_only_once_it_is_dispatched_to_it(ctx):
    case = load(make_case("firm_dispatched"))
    services.fire(case, "firm_return", user("firm1"), inputs={"reason": "other", "note": "非我方服务范围"})
    services.reassign(case, user("supervisor1"), firm="F02", note="改由安居物业")
    assert not services.can_view(user("firm2"), case)
    services.fire(case, "dispatch_to_firm", user("grid1"))
    assert services.can_view(user("firm2"), case) and not services.can_view(user("firm1"), case)
    services.reassign(case, user("supervisor1"), firm="F01", note="合同调整")
    assert services.can_view(user("firm1"), case) and case.state == "firm_dispatched"


def test_a_second_reporters_phone_is_masked_for_firms(client, auth, app):
    ref = make_case("firm_dispatched", building="3栋")
    with app.app_context():
        from app.org.models import Building, Compound

        compound = db.session.scalar(select(Compound).where(Compound.code == "X01"))
        building = db.session.scalar(
            select(Building).where(Building.compound_id == compound.id, Building.name == "3栋")
        )
        compound_id, building_id = compound.id, building.id
    auth.login("clerk1")
    page = auth.post(
        "/cases/new",
        {
            "category": "water_leak",
            "compound": compound_id,
            "building": building_id,
            "description": "三楼也在漏水",
            "resident_name": "李四",
            "resident_phone": "13811112222",
            "channel": "window",
        },
        form_page="/cases/new",
    )
    body = page.get_data(as_text=True)
    assert f'data-link-to="{ref}"' in body  # the second caller's report is linked, not noted
    auth.post(
        f"/cases/{ref}/reports",
        {"resident_name": "李四", "resident_phone": "13811112222", "description": "三楼也在漏水", "channel": "window"},
        form_page="/cases/new",
    )
    assert "13811112222" in client.get(f"/cases/{ref}").get_data(as_text=True)  # the clerk may call back
    auth.logout()
    auth.login("firm1")
    firm_page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "13811112222" not in firm_page and "138****2222" in firm_page


def test_open311_publishes_only_the_area_of_an_address_staff_typed(client, app):
    with app.app_context():
        case = services.register_case(
            services.Intake(
                category="lighting",
                description="小区路灯坏了三天",
                channel="hotline",
                address_text="秋浦路88号3栋2单元501室 张先生",
            ),
            user("street1"),
        )
        db.session.commit()
        ref = case.ref
    body = client.get(f"/open311/v2/requests/{ref}.json").get_data(as_text=True)
    assert "501" not in body and "张先生" not in body


def test_tracking_is_throttled_per_client_and_reference(client, app):
    ref = make_case(resident_phone="13955551234")
    token = csrf_token(client, "/track")
    statuses = [
        client.post("/track", data={"csrf_token": token, "ref": ref, "last4": f"{n:04d}"}).status_code for n in range(5)
    ]
    assert statuses == [404] * 3 + [429] * 2  # backoff after three wrong tries from this client
    # the guesser waits, even with the right digits …
    assert client.post("/track", data={"csrf_token": token, "ref": ref, "last4": "1234"}).status_code == 429
    # … but the resident, elsewhere, is not locked out of their own case (issue 9, defect 6)
    resident = app.test_client()
    answer = resident.post(
        "/track",
        data={"csrf_token": csrf_token(resident, "/track"), "ref": ref, "last4": "1234"},
        environ_base={"REMOTE_ADDR": "10.9.8.7"},
    )
    assert answer.status_code == 200


def test_a_pending_extension_is_withdrawn_when_the_case_moves_on(ctx):
    case = load(make_case("grid_handling"))
    sla.request_extension(case, user("grid1"), case.due_at + timedelta(days=2), "需要协调")
    services.fire(case, "dispatch_to_firm", user("grid1"))
    requests = db.session.scalars(select(ExtensionRequest).where(ExtensionRequest.case_id == case.id)).all()
    assert [r.status for r in requests] == ["withdrawn"]
    sla.request_extension(case, user("firm1"), case.due_at + timedelta(days=2), "等配件")  # not blocked


def test_reopening_notifies_the_grid_worker(ctx):
    case = load(make_case("closed"))
    services.fire(case, "reopen", user("supervisor1"), inputs={"reason": "居民再次反映"})
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.user_id == user("grid1").id, Notification.case_id == case.id)
    ).all()
    assert "reopened" in kinds


@pytest.mark.parametrize(
    "query",
    [
        "compound_id=99999999999999999999",
        "compound_id=%C2%B2",
        "created_from=0001-01-01",
        "cursor=WyIyMDI2LTExLTI1VDEwOjAwOjAwIiwgMV0",
        "cursor=WyIyMDI2LTExLTI1VDEwOjAwOjAwKzAwOjAwIiwgOTk5OTk5OTk5OTk5XQ",
    ],
)
def test_odd_list_parameters_are_refused_politely(client, auth, query):
    auth.login("clerk1")
    response = client.get(f"/cases?{query}")
    assert response.status_code == 302  # back to the list with a message, never a 500


def test_odd_ids_in_forms_and_urls_never_500(client, auth, app):
    ref = make_case("grid_assigned")
    auth.login("grid1")
    token = csrf_token(client, f"/cases/{ref}")
    assert (
        client.post(f"/cases/{ref}/actions/grid_accept", data={"csrf_token": token, "version": "²"}).status_code == 302
    )
    assert client.get("/inbox?before=99999999999999999999").status_code == 200
    assert client.get(f"/cases/{ref}/attachments/99999999999999999999").status_code == 404
    assert client.post("/inbox/99999999999999999999/open", data={"csrf_token": token}).status_code == 404
    auth.logout()
    auth.login("clerk1")
    with app.app_context():
        from app.org.models import Compound

        compound_id = db.session.scalar(select(Compound.id).where(Compound.code == "X01"))
    response = auth.post(
        "/cases/new",
        {
            "category": "water_leak",
            "compound": compound_id,
            "building": "abc",
            "description": "楼道漏水",
            "resident_name": "王",
            "confirm_new": "y",
            "resident_phone": "13800000000",
            "channel": "window",
        },
        form_page="/cases/new",
    )
    assert response.status_code == 422 and "楼道漏水" in response.get_data(as_text=True)


def test_deeply_nested_json_is_a_400(client, app):
    with app.app_context():
        from app.auth.services import create_token

        _token, secret = create_token(user("clerk1"), "t")
        db.session.commit()
    body = '{"category":' + "[" * 3000 + "]" * 3000 + "}"
    response = client.post(
        "/api/v1/cases", data=body, content_type="application/json", headers={"Authorization": f"Bearer {secret}"}
    )
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "malformed_json"


def test_timer_forms_keep_what_was_typed(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    response = client.post(
        f"/cases/{ref}/extension",
        data={
            "csrf_token": csrf_token(client, f"/cases/{ref}"),
            "proposed_due_at": "下周",
            "reason": "厂家配件要等十天",
        },
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert "厂家配件要等十天" in body and "2026-12-01 17:30" in body  # the reason is kept, the date explained


@pytest.mark.parametrize(
    "args",
    [
        ["calendar", "due", "2026-09-30T10:00:00+08:00", "99999999wd"],
        ["calendar", "due", "9999-12-31T10:00:00+08:00", "3wd"],
        ["calendar", "due", "2026-09-30T10:00:00+08:00", "99999999999999999h"],
        ["calendar", "show", "0"],
        ["calendar", "show", "99999"],
        ["sweep", "--now", "0001-01-01T00:00:00+08:00"],
        ["sweep", "--batch", "0"],
        ["create-user", "x9", "--role", "clerk", "--scope", "station:²", "--password", "Passw0rd1"],
        ["create-user", "x9", "--role", "clerk", "--scope", "station:99999999999999999999", "--password", "Passw0rd1"],
    ],
)
def test_cli_refuses_odd_input_without_a_traceback(runner, args):
    result = runner.invoke(args=args)
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (OverflowError, ValueError))


def test_log_channel_is_silent_for_rolled_back_work(ctx, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="ksm.notify")
    case = load(make_case("grid_handling"))
    caplog.clear()
    services.fire(case, "dispatch_to_firm", user("grid1"))
    db.session.rollback()
    assert not any(case.ref in message for message in caplog.messages)
    services.fire(load(case.ref), "dispatch_to_firm", user("grid1"))
    db.session.commit()
    assert any(case.ref in message for message in caplog.messages)
