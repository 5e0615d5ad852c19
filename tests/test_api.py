"""The REST API as the 12345 hotline platform uses it: tokens, intake, search, actions, errors."""

from __future__ import annotations

import pytest
from sqlalchemy import event, func, select

from app.auth.models import ApiToken
from app.auth.services import create_token
from app.cases.models import Case, FollowUp
from app.core.timeutil import utcnow
from app.extensions import db
from tests.factories import PNG, load, make_case, user  # PNG: a real image (uploads are re-encoded)

INTAKE = {"category": "water_leak", "description": "3栋楼道水管漏水，地面积水", "compound": "X01"}


def token_for(app, username: str) -> str:
    with app.app_context():
        _row, secret = create_token(user(username), "tests")
        db.session.commit()
        return secret


class Api:
    """A client for one user's token."""

    def __init__(self, client, secret: str, language: str | None = "en"):
        self.client = client
        self.headers = {"Authorization": f"Bearer {secret}"}
        if language:
            self.headers["Accept-Language"] = language

    def get(self, path, **kwargs):
        return self.client.get("/api/v1" + path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)

    def post(self, path, **kwargs):
        return self.client.post("/api/v1" + path, headers={**self.headers, **kwargs.pop("headers", {})}, **kwargs)


@pytest.fixture
def as_user(app, client):
    def make(username: str, language: str | None = "en") -> Api:
        return Api(client, token_for(app, username), language)

    return make


def error_of(response) -> dict:
    assert response.content_type == "application/json"
    return response.get_json()["error"]


def case_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Case))


# ------------------------------------------------------------------------------- authentication


def test_calls_without_a_valid_token_are_401_with_a_challenge(client, app):
    missing = client.get("/api/v1/cases")
    assert missing.status_code == 401 and error_of(missing)["code"] == "unauthorized"
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/api/v1/cases", headers={"Authorization": "Bearer ksm_nope"})
    assert wrong.status_code == 401 and error_of(wrong)["code"] == "invalid_token"
    basic = client.get("/api/v1/cases", headers={"Authorization": "Basic YWRtaW46eA=="})
    assert basic.status_code == 401


def test_a_revoked_token_stops_working_and_use_is_recorded(client, app):
    secret = token_for(app, "clerk1")
    api = Api(client, secret)
    assert api.get("/me").get_json()["username"] == "clerk1"
    with app.app_context():
        token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == ApiToken.hash_secret(secret)))
        assert token.last_used_at is not None
        token.revoked_at = utcnow()
        db.session.commit()
    assert api.get("/me").status_code == 401


def test_a_disabled_accounts_token_is_refused_and_last_use_is_written_once_a_minute(client, app):
    from datetime import timedelta

    secret = token_for(app, "clerk2")
    api = Api(client, secret)

    def last_used():
        with app.app_context():
            return db.session.scalar(
                select(ApiToken.last_used_at).where(ApiToken.token_hash == ApiToken.hash_secret(secret))
            )

    assert api.get("/me").status_code == 200
    first = last_used()
    assert first is not None
    assert api.get("/me").status_code == 200
    assert last_used() == first  # within the minute: no write
    with app.app_context():
        db.session.execute(
            ApiToken.__table__.update()
            .where(ApiToken.token_hash == ApiToken.hash_secret(secret))
            .values(last_used_at=first - timedelta(minutes=2))
        )
        db.session.commit()
    assert api.get("/me").status_code == 200
    assert last_used() > first - timedelta(seconds=1)  # older than a minute: written again
    with app.app_context():
        user("clerk2").active = False
        db.session.commit()
    refused = api.get("/me")
    assert refused.status_code == 401 and error_of(refused)["code"] == "invalid_token"


def test_me_names_the_role_and_scope(as_user):
    body = as_user("grid1").get("/me").get_json()
    assert (
        body["role"] == "grid_worker" and body["scope"]["kind"] == "grid" and body["scope"]["name"] == "杏花村第一网格"
    )


def test_messages_follow_accept_language(as_user):
    english = as_user("clerk1", "en").get("/cases/KSM-20000101-0001")
    chinese = as_user("clerk1", "zh-CN").get("/cases/KSM-20000101-0001")
    assert "No case" in error_of(english)["message"]
    assert "KSM-20000101-0001" in error_of(chinese)["message"] and "No case" not in error_of(chinese)["message"]


# ----------------------------------------------------------------------------------------- intake


def test_a_clerk_registers_a_case_that_is_routed_at_once(as_user, app):
    response = as_user("clerk1").post(
        "/cases",
        json={
            **INTAKE,
            "building": "3栋",
            "unit": "2单元301",
            "resident_name": "陈先生",
            "resident_phone": "13812345678",
            "channel": "hotline",
            "external_ref": "12345-2026-000001",
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/cases/{body['ref']}")
    assert body["state"] == "grid_assigned" and body["assigned_grid_worker"]["username"] == "grid1"
    assert body["channel"] == "hotline" and body["building"]["name"] == "3栋"
    assert body["resident"] == {"name": "陈先生", "phone": "13812345678"}
    assert body["version"] >= 1 and body["allowed_triggers"] == [] and body["possible_duplicates"] == []
    with app.app_context():
        assert load(body["ref"]).created_by.username == "clerk1"


def test_intake_errors_are_422_with_each_field(as_user, app):
    api = as_user("clerk1")
    before = case_count(app)
    response = api.post("/cases", json={"category": "nope", "description": "短", "compound": "X01"})
    assert response.status_code == 422
    error = error_of(response)
    assert error["code"] == "validation_error" and set(error["details"]["fields"]) >= {"category", "description"}
    unknown = api.post("/cases", json={**INTAKE, "colour": "red"})
    assert unknown.status_code == 422 and error_of(unknown)["code"] == "unknown_field"
    wrong_type = api.post("/cases", json={**INTAKE, "description": 12345})
    assert wrong_type.status_code == 422 and error_of(wrong_type)["field"] == "description"
    assert api.post("/cases", json={**INTAKE, "compound": 10**12}).status_code == 422
    assert api.post("/cases", json={**INTAKE, "channel": "open311"}).status_code == 422
    assert api.post("/cases", json={**INTAKE, "description": "漏水\x00漏水漏水"}).status_code == 422
    assert case_count(app) == before


def test_malformed_bodies_are_400_json(as_user):
    api = as_user("clerk1")
    not_json = api.post("/cases", data="category=water_leak")
    assert not_json.status_code == 400 and error_of(not_json)["code"] == "json_required"
    broken = api.post("/cases", data="{nope", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and error_of(broken)["code"] == "malformed_json"
    array = api.post("/cases", json=[1, 2])
    assert array.status_code == 400 and error_of(array)["code"] == "json_object_required"


def test_intake_is_limited_to_ones_own_area_and_role(as_user, app):
    before = case_count(app)
    # clerk1 works at the station of 杏花村社区; X05 is in 清风社区
    outside = as_user("clerk1").post("/cases", json={**INTAKE, "compound": "X05"})
    assert outside.status_code == 422 and error_of(outside)["field"] == "compound"
    firm = as_user("firm1").post("/cases", json=INTAKE)
    assert firm.status_code == 403 and error_of(firm)["code"] == "forbidden"
    assert case_count(app) == before
    assert as_user("grid3").post("/cases", json={**INTAKE, "compound": "X05"}).status_code == 201


def test_the_same_idempotency_key_and_body_return_the_same_case(as_user, app):
    api = as_user("clerk1")
    before = case_count(app)
    first = api.post("/cases", json=INTAKE, headers={"Idempotency-Key": "12345-A-0001"})
    again = api.post("/cases", json=dict(reversed(INTAKE.items())), headers={"Idempotency-Key": "12345-A-0001"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["ref"] == again.get_json()["ref"]
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Location"] == first.headers["Location"]
    assert case_count(app) == before + 1
    other_body = api.post(
        "/cases", json={**INTAKE, "description": "另一件事：楼道灯不亮"}, headers={"Idempotency-Key": "12345-A-0001"}
    )
    assert other_body.status_code == 422 and error_of(other_body)["code"] == "idempotency_key_reused"
    # keys belong to their user: another user's same key is a new case
    other_user = as_user("grid1").post("/cases", json=INTAKE, headers={"Idempotency-Key": "12345-A-0001"})
    assert other_user.status_code == 201 and other_user.get_json()["ref"] != first.get_json()["ref"]
    assert case_count(app) == before + 2


def test_a_failed_creation_does_not_use_up_its_idempotency_key(as_user, app):
    api = as_user("clerk1")
    bad = api.post("/cases", json={**INTAKE, "description": "短"}, headers={"Idempotency-Key": "retry-me"})
    assert bad.status_code == 422
    good = api.post("/cases", json=INTAKE, headers={"Idempotency-Key": "retry-me"})
    assert good.status_code == 201
    assert api.post("/cases", json=INTAKE, headers={"Idempotency-Key": "bad key with spaces"}).status_code == 422


# --------------------------------------------------------------------------------- reading cases


def test_cases_are_listed_within_scope_and_paged_by_cursor(as_user, app):
    refs = [make_case("grid_assigned") for _ in range(7)]
    elsewhere = make_case("grid_assigned", compound="X05")
    api = as_user("grid1")
    seen, cursor = [], None
    while True:
        response = api.get("/cases", query_string={"limit": 3, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        body = response.get_json()
        assert len(body["items"]) <= 3
        seen += [item["ref"] for item in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert set(refs) <= set(seen) and elsewhere not in seen and len(seen) == len(set(seen))
    assert seen == sorted(seen, reverse=True)
    grid3 = as_user("grid3").get("/cases").get_json()["items"]
    assert [item["ref"] for item in grid3] == [elsewhere]


def test_list_filters_and_bad_parameters(as_user):
    closed = make_case("closed")
    open_ = make_case("grid_handling", category="noise")
    api = as_user("supervisor1")
    refs = lambda **q: {i["ref"] for i in api.get("/cases", query_string=q).get_json()["items"]}  # noqa: E731
    assert closed in refs(state="closed") and open_ not in refs(state="closed")
    assert open_ in refs(state="open") and open_ in refs(category="noise") and closed not in refs(category="noise")
    assert refs(q=open_) == {open_}
    for bad in (
        {"state": "lost"},
        {"limit": "0"},
        {"limit": "abc"},
        {"cursor": "garbage"},
        {"compound_id": "x"},
        {"created_from": "yesterday"},
        {"created_from": "0001-01-01"},
        {"assigned_to": "99999999999"},
    ):
        response = api.get("/cases", query_string=bad)
        assert response.status_code == 422, bad
        assert error_of(response)["code"] == "validation_error"


def test_a_list_page_costs_the_same_number_of_queries_whatever_its_size(as_user, app, monkeypatch):
    for index in range(55):
        make_case("grid_assigned", category=("water_leak", "garbage", "noise")[index % 3])
    api = as_user("supervisor1")
    api.get("/cases")  # the token's last use is written at most once a minute: do it before counting
    # the settings' version is read at most once a second: not during the counting, whatever the clock
    monkeypatch.setitem(app.config, "SETTINGS_CHECK_SECONDS", 3600)

    def statements(limit: int) -> int:
        count = 0

        def counter(*_args):
            nonlocal count
            count += 1

        with app.app_context():
            engine = db.engine
        event.listen(engine, "before_cursor_execute", counter)
        try:
            response = api.get("/cases", query_string={"limit": limit})
        finally:
            event.remove(engine, "before_cursor_execute", counter)
        body = response.get_json()
        assert len(body["items"]) == limit and body["next_cursor"]
        return count

    assert statements(5) == statements(50)


def test_a_case_shows_the_callers_allowed_triggers_and_version(as_user):
    ref = make_case("grid_assigned")
    body = as_user("grid1").get(f"/cases/{ref}").get_json()
    assert body["ref"] == ref and body["allowed_triggers"] == ["grid_accept"] and isinstance(body["version"], int)
    assert as_user("clerk1").get(f"/cases/{ref}").get_json()["allowed_triggers"] == []


def test_cases_outside_scope_are_404_and_firms_see_masked_phones(as_user):
    ref = make_case("firm_dispatched", resident_phone="13812345678")
    assert as_user("grid3").get(f"/cases/{ref}").status_code == 404
    assert as_user("firm2").get(f"/cases/{ref}").status_code == 404
    firm = as_user("firm1").get(f"/cases/{ref}").get_json()
    assert firm["resident"]["phone"] == "138****5678"
    assert "13812345678" not in str(as_user("firm1").get(f"/cases/{ref}/events").get_json())
    assert as_user("grid1").get(f"/cases/{ref}").get_json()["resident"]["phone"] == "13812345678"
    # not yet dispatched: the firm does not see it
    early = make_case("grid_handling")
    assert as_user("firm1").get(f"/cases/{early}").status_code == 404
    assert as_user("firm1").get("/cases/not a ref!").status_code == 404


def test_events_are_the_history_oldest_first(as_user):
    ref = make_case("firm_processing")
    items = as_user("grid1").get(f"/cases/{ref}/events").get_json()["items"]
    assert [e["kind"] for e in items][0] == "created"
    assert [e["trigger"] for e in items if e["kind"] == "transition"] == [
        "route",
        "grid_accept",
        "dispatch_to_firm",
        "firm_accept",
    ]


# -------------------------------------------------------------------------------------- actions


def test_a_grid_worker_accepts_and_dispatches_with_the_version_seen(as_user, app):
    ref = make_case("grid_assigned")
    api = as_user("grid1")
    version = api.get(f"/cases/{ref}").get_json()["version"]
    accepted = api.post(f"/cases/{ref}/transitions", json={"trigger": "grid_accept", "version": version})
    assert accepted.status_code == 200, accepted.get_json()
    body = accepted.get_json()
    assert body["case"]["state"] == "grid_handling" and body["event"]["trigger"] == "grid_accept"
    assert body["case"]["version"] > version
    assert "dispatch_to_firm" in body["case"]["allowed_triggers"]
    dispatched = api.post(
        f"/cases/{ref}/transitions",
        json={"trigger": "dispatch_to_firm", "note": "已核实", "version": body["case"]["version"]},
    )
    assert dispatched.status_code == 200 and dispatched.get_json()["case"]["state"] == "firm_dispatched"


def test_refused_transitions_say_why_and_what_is_allowed(as_user):
    ref = make_case("grid_handling")
    grid = as_user("grid1")
    wrong_state = grid.post(f"/cases/{ref}/transitions", json={"trigger": "grid_accept"})
    assert wrong_state.status_code == 409
    error = error_of(wrong_state)
    assert error["code"] == "trigger_not_allowed" and "dispatch_to_firm" in error["details"]["allowed"]
    wrong_role = as_user("supervisor1").post(f"/cases/{ref}/transitions", json={"trigger": "dispatch_to_firm"})
    assert wrong_role.status_code == 403 and error_of(wrong_role)["code"] == "role_not_allowed"
    missing = grid.post(f"/cases/{ref}/transitions", json={"trigger": "close_invalid", "reason": "duplicate"})
    assert missing.status_code == 422 and {"note", "duplicate_of"} <= set(error_of(missing)["details"]["fields"])
    stale = grid.post(f"/cases/{ref}/transitions", json={"trigger": "dispatch_to_firm", "version": 1})
    assert stale.status_code == 409 and error_of(stale)["code"] == "version_conflict"
    assert error_of(stale)["details"]["allowed"]
    unknown = grid.post(f"/cases/{ref}/transitions", json={"trigger": "teleport"})
    assert unknown.status_code == 422 and error_of(unknown)["code"] == "unknown_trigger"
    for body in (
        {},
        {"trigger": 7},
        {"trigger": "close_invalid", "reason": ["duplicate"], "note": "x"},
        {"trigger": "grid_accept", "version": "3"},
        {"trigger": "grid_accept", "colour": "red"},
    ):
        assert grid.post(f"/cases/{ref}/transitions", json=body).status_code == 422, body
    assert as_user("grid1").get(f"/cases/{ref}").get_json()["state"] == "grid_handling"


def test_a_resident_signoff_recorded_by_the_clerk_takes_booleans(as_user, app):
    ref = make_case("awaiting_signoff")
    api = as_user("clerk1")
    wrong = api.post(
        f"/cases/{ref}/transitions",
        json={"trigger": "signoff", "contacted": "yes", "resolved": True, "satisfaction": "satisfied"},
    )
    assert wrong.status_code == 422 and error_of(wrong)["field"] == "contacted"
    done = api.post(
        f"/cases/{ref}/transitions",
        json={"trigger": "signoff", "contacted": True, "resolved": True, "satisfaction": "basic"},
    )
    assert done.status_code == 200 and done.get_json()["case"]["resolution"] == "resolved_basic"


def test_notes_and_attachments(as_user):
    ref = make_case("firm_processing")
    firm = as_user("firm1")
    note = firm.post(f"/cases/{ref}/notes", json={"note": "已联系居民，明早上门"})
    assert note.status_code == 201 and note.get_json()["event"]["note"] == "已联系居民，明早上门"
    assert firm.post(f"/cases/{ref}/notes", json={"note": ""}).status_code == 422
    assert firm.post(f"/cases/{ref}/notes", json={"text": "x"}).status_code == 422
    import io

    upload = firm.post(
        f"/cases/{ref}/attachments",
        data={"file": (io.BytesIO(PNG), "现场.png"), "note": "维修前"},
        content_type="multipart/form-data",
    )
    assert upload.status_code == 201, upload.get_json()
    body = upload.get_json()
    assert body["attachments"][0]["content_type"] == "image/png" and body["event"]["kind"] == "attachment"
    assert firm.get(f"/cases/{ref}").get_json()["attachments"][0]["filename"] == "现场.png"
    not_image = firm.post(
        f"/cases/{ref}/attachments",
        data={"photos": (io.BytesIO(b"hello"), "a.txt")},
        content_type="multipart/form-data",
    )
    assert not_image.status_code == 422
    assert firm.post(f"/cases/{ref}/attachments", json={}).status_code == 422
    assert as_user("firm2").post(f"/cases/{ref}/notes", json={"note": "x"}).status_code == 404


# ----------------------------------------------------------------------------- reference data


def test_categories_and_organisation(as_user):
    categories = as_user("clerk1").get("/categories").get_json()["items"]
    assert {"water_leak", "lift_entrapment"} <= {c["code"] for c in categories}
    tree = as_user("clerk1").get("/organisation").get_json()
    (street,) = tree["streets"]
    assert street["code"] == "S01" and len(street["communities"]) == 3
    compounds = {c["code"]: c for community in street["communities"] for c in community["compounds"]}
    assert "3栋" in {b["name"] for b in compounds["X01"]["buildings"]}
    assert {f["code"] for f in tree["firms"]} == {"F01", "F02"}


def test_rates_of_the_period_in_scope(as_user, app):
    make_case("closed")
    response = as_user("supervisor1").get("/rates", query_string={"group_by": "compound"})
    assert response.status_code == 200
    body = response.get_json()
    assert body["total"]["valid_follow_ups"] >= 1 and body["total"]["response_rate"] == 1.0
    assert any(row["code"] == "X01" for row in body["rows"])
    assert as_user("supervisor2").get("/rates").get_json()["total"]["valid_follow_ups"] == 0
    assert as_user("supervisor1").get("/rates", query_string={"period": "2026-13"}).status_code == 422
    assert as_user("supervisor1").get("/rates", query_string={"group_by": "planet"}).status_code == 422
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FollowUp)) >= 1


# ------------------------------------------------------------------------------------ documents


def test_the_openapi_document_describes_every_route(client, app):
    spec = client.get("/api/v1/openapi.json").get_json()
    assert (
        spec["openapi"].startswith("3.") and spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    )
    documented = {(method.upper(), "/api/v1" + path) for path, ops in spec["paths"].items() for method in ops}
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api.") and rule.endpoint != "api.docs":
            path = rule.rule.replace("<ref>", "{ref}")
            routes |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes == documented
    transition = spec["components"]["schemas"]["Transition_close_invalid"]
    assert transition["properties"]["reason"]["enum"] == ["duplicate", "out_of_jurisdiction", "withdrawn"]
    assert set(transition["required"]) == {"trigger", "reason", "note"}


def test_the_reference_page_is_readable_html_without_a_cdn(client):
    response = client.get("/api/v1/docs")
    assert response.status_code == 200 and response.content_type.startswith("text/html")
    page = response.get_data(as_text=True)
    assert "/api/v1/cases/{ref}/transitions" in page and "Idempotency-Key" in page and "CaseCreate" in page
    assert "cdn" not in page.lower() and "https://" not in page
