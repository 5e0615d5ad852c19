"""Administration screens: only administrators, with validation that keeps the input."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.auth.models import User
from app.cases.models import Category
from app.extensions import db
from app.org.models import Community, Street
from tests.conftest import csrf_token

ADMIN_PAGES = [
    "/admin/",
    "/admin/street/",
    "/admin/community/",
    "/admin/grid/",
    "/admin/compound/",
    "/admin/building/",
    "/admin/servicestation/",
    "/admin/propertyfirm/",
    "/admin/firmcontract/",
    "/admin/partybranch/",
    "/admin/category/",
    "/admin/user/",
    "/admin/apitoken/",
]


@pytest.mark.parametrize("username", ["clerk1", "grid1", "firm1", "branch1", "supervisor1", "street1"])
def test_non_administrators_get_403_on_admin_pages(client, auth, username):
    auth.login(username)
    for page in ADMIN_PAGES:
        assert client.get(page).status_code == 403, page


def test_anonymous_users_are_sent_to_login(client):
    response = client.get("/admin/community/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_administrator_sees_every_admin_page(client, auth):
    auth.login("admin")
    for page in ADMIN_PAGES:
        response = client.get(page)
        assert response.status_code == 200, page
    listing = client.get("/admin/community/").get_data(as_text=True)
    assert "杏花村社区" in listing and "清风社区" in listing


def test_admin_creates_a_community(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/community/new/")
    with app.app_context():
        street_id = db.session.scalar(select(Street.id).where(Street.code == "S01"))
    response = client.post(
        "/admin/community/new/", data={"csrf_token": token, "code": "C09", "name": "江南社区", "street": str(street_id)}
    )
    assert response.status_code == 302
    with app.app_context():
        created = db.session.scalar(select(Community).where(Community.code == "C09"))
        assert created is not None and created.name == "江南社区"


def test_admin_form_errors_keep_what_was_typed(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/community/new/")
    with app.app_context():
        street_id = db.session.scalar(select(Street.id).where(Street.code == "S01"))
    response = client.post(
        "/admin/community/new/",
        data={"csrf_token": token, "code": "bad code!", "name": "江南社区", "street": str(street_id)},
    )
    assert response.status_code == 200
    body = response.get_data(as_text=True)
    assert "江南社区" in body  # kept
    assert "C01" in body  # the hint in the error message
    with app.app_context():
        assert db.session.scalar(select(Community).where(Community.name == "江南社区")) is None


def test_duplicate_code_is_refused_with_a_clear_message(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/community/new/")
    with app.app_context():
        street_id = db.session.scalar(select(Street.id).where(Street.code == "S01"))
        before = len(db.session.scalars(select(Community)).all())
    response = client.post(
        "/admin/community/new/",
        data={"csrf_token": token, "code": "C01", "name": "另一个社区", "street": str(street_id)},
        follow_redirects=True,
    )
    body = response.get_data(as_text=True)
    assert "另一个社区" in body
    with app.app_context():
        assert len(db.session.scalars(select(Community)).all()) == before


def test_admin_post_without_csrf_is_refused(client, auth):
    auth.login("admin")
    response = client.post("/admin/street/new/", data={"code": "S09", "name": "新街道"})
    assert response.status_code == 400


def test_admin_creates_a_user_with_validated_role_and_scope(client, auth, app):
    auth.login("admin")
    token = csrf_token(client, "/admin/user/new/")
    with app.app_context():
        community_id = db.session.scalar(select(Community.id).where(Community.code == "C02"))
    base = {
        "csrf_token": token,
        "username": "clerk9",
        "display_name": "新受理员",
        "role": "clerk",
        "new_password": "Passw0rd9",
        "active": "y",
    }
    wrong_scope = client.post("/admin/user/new/", data={**base, "community": str(community_id)})
    assert wrong_scope.status_code == 200
    assert "服务站" in wrong_scope.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User).where(User.username == "clerk9")) is None
        from app.org.models import ServiceStation

        station_id = db.session.scalar(select(ServiceStation.id).where(ServiceStation.code == "ST02"))
    ok = client.post("/admin/user/new/", data={**base, "station": str(station_id)})
    assert ok.status_code == 302
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "clerk9"))
        assert user.station_id == station_id and user.check_password("Passw0rd9")


def test_category_admin_lists_seeded_categories(client, auth, app):
    auth.login("admin")
    body = client.get("/admin/category/?page_size=100").get_data(as_text=True)
    assert "电梯困人" in body and "维修资金使用" in body
    with app.app_context():
        entrapment = db.session.scalar(select(Category).where(Category.code == "lift_entrapment"))
        assert entrapment.default_urgency == "urgent"
        fund = db.session.scalar(select(Category).where(Category.code == "maintenance_fund"))
        assert fund.workflow == "predeliberation"


def test_admin_revokes_tokens_in_bulk_and_ignores_garbage_ids(client, auth, app):
    from app.auth.models import ApiToken
    from app.auth.services import create_token, user_for_token

    with app.app_context():
        token, secret = create_token(db.session.scalar(select(User).where(User.username == "firm1")), "erp")
        db.session.commit()
        token_id = token.id
    auth.login("admin")
    page = "/admin/apitoken/"
    response = client.post(
        "/admin/apitoken/action/",
        data={
            "csrf_token": csrf_token(client, page),
            "action": "revoke",
            "rowid": [str(token_id), "x²", "99999999999"],
        },
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(ApiToken, token_id).revoked_at is not None
        assert user_for_token(secret) is None


def test_admin_pages_have_the_app_header_and_language_switch(client, auth, app):
    import re

    auth.login("admin")
    body = client.get("/admin/category/").get_data(as_text=True)
    assert 'id="app-header"' in body and 'href="/cases"' in body  # the same navigation as the rest
    assert '<a class="nav-link active" href="/admin/">' in body
    switch = re.search(r'<form method="post" action="/language"[^>]*id="language-switch">(.*?)</form>', body, re.S)
    assert switch and 'name="next" value="/admin/category/?"' in switch.group(1)
    assert 'name="csrf_token"' in switch.group(1) and 'value="en"' in switch.group(1)
    assert "<script>" not in body and not re.search(r"\son(click|change|submit)=", body)
    # the switch works: the administration in English, then back in Chinese
    token = csrf_token(client, "/admin/category/")
    switched = client.post("/language", data={"csrf_token": token, "locale": "en", "next": "/admin/category/"})
    assert switched.status_code in (302, 303)
    english = client.get("/admin/category/").get_data(as_text=True)
    assert re.search(r"<td[^>]*>\s*Urgent\s*</td>", english) and "Administration" in english
    client.post("/language", data={"csrf_token": token, "locale": "zh_Hans_CN", "next": "/admin/"})


def test_admin_lists_show_local_times_and_labels_not_codes(client, auth, app):
    import re
    from datetime import UTC, datetime

    with app.app_context():
        clerk = db.session.scalar(select(User).where(User.username == "clerk1"))
        clerk.last_login_at = datetime(2026, 11, 25, 2, 5, 6, 123456, tzinfo=UTC)
        db.session.commit()
    auth.login("admin")
    users = client.get("/admin/user/?search=clerk1").get_data(as_text=True)
    assert "2026-11-25 10:05" in users  # Beijing time, to the minute
    assert "02:05" not in users and "123456" not in users and "+00:00" not in users
    assert not re.search(r"<td[^>]*>\s*clerk\s*</td>", users) and re.search(r"<td[^>]*>\s*受理员\s*</td>", users)
    categories = client.get("/admin/category/").get_data(as_text=True)
    cells = re.findall(r"<td[^>]*>\s*([^<]*?)\s*</td>", categories)
    assert "紧急" in cells and "一般" in cells and "urgent" not in cells and "normal" not in cells


def test_time_limits_as_a_step_by_urgency_grid(client, auth, app):
    import re

    auth.login("admin")
    body = client.get("/admin/timelimitpolicy/").get_data(as_text=True)
    grid = body[body.index('id="limit-grid"') : body.index("</table>", body.index('id="limit-grid"'))]
    header = r'<th scope="col" data-urgency="normal">一般</th>\s*<th scope="col" data-urgency="urgent">紧急'
    assert re.search(header, grid)
    rows = re.findall(r'<th scope="row">([^<]+)</th>', grid)
    assert "已登记" in rows and rows[-1] == "整件诉求"
    limits = dict(re.findall(r'data-limit="([^"]+)">([^<]+)</a>', grid))
    assert limits["registered/normal"] == "4 个工作小时" and limits["case/normal"] == "10 个工作日"
    assert limits["registered/urgent"] == "1 小时（自然时间）"
    assert "工作分钟" not in grid
    edit = re.search(r'href="(/admin/timelimitpolicy/edit/\?id=\d+[^"]*)" data-limit="case/normal"', grid).group(1)
    assert client.get(edit.replace("&amp;", "&")).status_code == 200


def test_user_form_role_carries_the_scopes_it_accepts(client, auth):
    import json
    import re

    from app.auth import roles

    auth.login("admin")
    body = client.get("/admin/user/new/").get_data(as_text=True)
    raw = re.search(r'<select[^>]*id="role"[^>]*data-role-scopes="([^"]+)"', body) or re.search(
        r'<select[^>]*data-role-scopes="([^"]+)"[^>]*id="role"', body
    )
    assert raw is not None
    scopes = json.loads(raw.group(1).replace("&#34;", '"').replace("&quot;", '"'))
    assert scopes == {role: list(kinds) for role, kinds in roles.ROLE_SCOPES.items()}
    assert "/static/js/admin.js" in body
