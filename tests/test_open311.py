"""Open311 GeoReport v2 as a civic-reporting client uses it: both formats of every endpoint, errors included."""

from __future__ import annotations

import json
from datetime import timedelta
from xml.etree import ElementTree as ET

import pytest
from sqlalchemy import func, select

from app.cases.defaults import DEFAULT_ATTRIBUTES
from app.cases.models import Case, CaseEvent, Category
from app.core.timeutil import utcnow
from app.extensions import db
from app.open311.models import Open311Key, Open311Token
from tests.factories import load, make_case

API_KEY = "demo-open311-key"
BASE = "/open311/v2"
SERVICE_ELEMENTS = ["service_code", "service_name", "description", "metadata", "type", "keywords", "group"]
ATTRIBUTE_ELEMENTS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]
REQUEST_ELEMENTS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
FORMATS = ["xml", "json"]


@pytest.fixture
def attributes(app):
    """The default extra questions of lift entrapment and water leak on their categories."""
    with app.app_context():
        for code, definition in DEFAULT_ATTRIBUTES.items():
            db.session.scalar(select(Category).where(Category.code == code)).attributes = definition
        db.session.commit()


def xml_of(response) -> ET.Element:
    assert response.content_type == "text/xml; charset=utf-8"
    text = response.get_data(as_text=True)
    assert text.startswith('<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.data)


def json_of(response):
    assert response.content_type == "application/json; charset=utf-8"
    return json.loads(response.data)


def errors_of(response, fmt: str) -> list[dict]:
    """The specification's error list, parsed from either format."""
    if fmt == "json":
        body = json_of(response)
        assert isinstance(body, list)
        return body
    root = xml_of(response)
    assert root.tag == "errors"
    errors = []
    for error in root:
        assert error.tag == "error" and [child.tag for child in error] == ["code", "description"]
        errors.append({"code": int(error.findtext("code")), "description": error.findtext("description")})
    return errors


def requests_of(response, fmt: str) -> list[dict]:
    if fmt == "json":
        body = json_of(response)
        assert isinstance(body, list)
        return body
    root = xml_of(response)
    assert root.tag == "service_requests"
    return [{child.tag: child.text for child in item} for item in root if item.tag == "request"]


def submit(client, fmt="json", **fields):
    data = {
        "api_key": API_KEY,
        "service_code": "water_leak",
        "address_string": "秋浦西路88号 阳光花园 3栋楼道",
        "description": "楼道天花板一直在滴水",
    }
    data.update(fields)
    data = {k: v for k, v in data.items() if v is not None}
    return client.post(f"{BASE}/requests.{fmt}", data=data)


# --------------------------------------------------------------------------------------- services


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_lists_active_categories_with_string_codes_and_metadata(client, app, attributes, fmt):
    with app.app_context():
        db.session.scalar(select(Category).where(Category.code == "pets")).active = False
        db.session.commit()
        active = db.session.scalar(select(func.count()).select_from(Category).where(Category.active.is_(True)))
    response = client.get(f"{BASE}/services.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        services = json_of(response)
        assert isinstance(services, list)
        assert all(list(s) == SERVICE_ELEMENTS for s in services)
        assert all(isinstance(s["service_code"], str) and isinstance(s["metadata"], bool) for s in services)
    else:
        root = xml_of(response)
        assert root.tag == "services"
        assert all(s.tag == "service" and [c.tag for c in s] == SERVICE_ELEMENTS for s in root)
        services = [{c.tag: c.text for c in s} for s in root]
        for s in services:
            s["metadata"] = {"true": True, "false": False}[s["metadata"]]
    by_code = {s["service_code"]: s for s in services}
    assert len(services) == active and "pets" not in by_code
    assert by_code["lift_entrapment"]["metadata"] is True and by_code["water_leak"]["metadata"] is True
    assert by_code["garbage"]["metadata"] is False
    assert {s["type"] for s in services} == {"realtime"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_service_definition_names_the_attributes_in_the_specifications_shape(client, attributes, fmt):
    response = client.get(f"{BASE}/services/water_leak.{fmt}")
    assert response.status_code == 200
    if fmt == "json":
        definition = json_of(response)
        assert isinstance(definition, dict) and definition["service_code"] == "water_leak"
        (attribute,) = definition["attributes"]
        assert list(attribute) == ATTRIBUTE_ELEMENTS
        assert attribute["variable"] is True and attribute["required"] is False
        assert attribute["datatype"] == "singlevaluelist" and attribute["order"] == 1
        assert attribute["values"] == [{"key": "yes", "name": "是 / yes"}, {"key": "no", "name": "否 / no"}]
    else:
        root = xml_of(response)
        assert root.tag == "service_definition" and [c.tag for c in root] == ["service_code", "attributes"]
        (attribute,) = root.find("attributes")
        assert attribute.tag == "attribute" and [c.tag for c in attribute] == ATTRIBUTE_ELEMENTS
        assert attribute.findtext("variable") == "true" and attribute.findtext("code") == "still_leaking"
        values = attribute.find("values")
        assert [v.tag for v in values] == ["value", "value"]
        assert [[c.tag for c in v] for v in values] == [["key", "name"], ["key", "name"]]
        assert values[0].findtext("key") == "yes"


@pytest.mark.parametrize("fmt", FORMATS)
def test_unknown_service_is_404_in_the_error_list(client, fmt):
    response = client.get(f"{BASE}/services/no_such_thing.{fmt}")
    assert response.status_code == 404
    (error,) = errors_of(response, fmt)
    assert error["code"] == 404 and "no_such_thing" in error["description"]


def test_an_unknown_resource_under_open311_is_404_in_its_format(client):
    assert errors_of(client.get(f"{BASE}/nothing.json"), "json")[0]["code"] == 404
    assert client.get(f"{BASE}/services.csv").status_code == 404


# ----------------------------------------------------------------------------------- POST requests


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_creates_a_case_through_intake_and_routes_it(client, app, attributes, fmt):
    response = submit(
        client,
        fmt,
        **{
            "attribute[still_leaking]": "yes",
            "first_name": "小明",
            "last_name": "张",
            "phone": "13812345678",
            "email": "zhang@example.cn",
            "jurisdiction_id": "chizhou.gov.cn",
        },
    )
    assert response.status_code == 200, response.data
    (created,) = requests_of(response, fmt)
    assert list(created) == ["service_request_id", "service_notice", "account_id"]
    ref = created["service_request_id"]
    assert isinstance(ref, str) and ref.startswith("KSM-")
    assert ref in created["service_notice"]
    with app.app_context():
        case = load(ref)
        assert case.channel == "open311" and case.category.code == "water_leak"
        assert case.compound.code == "X01" and case.state == "grid_assigned"
        assert case.assigned_grid_worker.username == "grid1"
        assert case.resident_phone == "13812345678" and case.resident_name == "张小明"
        created_event = db.session.scalar(
            select(CaseEvent).where(CaseEvent.case_id == case.id, CaseEvent.kind == "created")
        )
        extra = created_event.payload["extra"]
        assert extra["attributes"] == {"still_leaking": "yes"}
        assert extra["contact"]["email"] == "zhang@example.cn"
        token = db.session.scalar(select(Open311Token).where(Open311Token.case_id == case.id))
        assert token.token == response.headers["X-Open311-Token"]
        assert db.session.scalar(select(Open311Key.last_used_at).where(Open311Key.prefix == API_KEY[:8])) is not None


def test_api_key_may_come_in_the_query_string_and_lat_long_is_a_location(client, app):
    response = client.post(
        f"{BASE}/requests.json?api_key={API_KEY}&jurisdiction_id=",
        data={"service_code": "garbage", "lat": "30.66", "long": "117.49", "description": ""},
    )
    assert response.status_code == 200, response.data
    ref = json_of(response)[0]["service_request_id"]
    with app.app_context():
        case = load(ref)
        # no compound can be recognised: the case waits for a supervisor in the key's street
        assert case.compound_id is None and case.needs_routing and case.street.code == "S01"
        assert (case.latitude, case.longitude) == (30.66, 117.49)
        assert case.description.startswith("垃圾未及时清运")


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("api_key", [None, "", "not-a-key"])
def test_post_without_a_valid_api_key_is_403(client, app, fmt, api_key):
    with app.app_context():
        before = db.session.scalar(select(func.count()).select_from(Case))
    response = submit(client, fmt, api_key=api_key)
    assert response.status_code == 403
    (error,) = errors_of(response, fmt)
    assert error["code"] == 403 and "api_key" in error["description"]
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Case)) == before


def test_a_revoked_key_is_refused(client, app):
    with app.app_context():
        key = db.session.scalar(select(Open311Key).where(Open311Key.key_hash == Open311Key.hash_key(API_KEY)))
        key.revoked_at = utcnow()
        db.session.commit()
    assert submit(client).status_code == 403


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_without_a_location_is_400(client, fmt):
    response = submit(client, fmt, address_string="")
    assert response.status_code == 400
    assert "location" in errors_of(response, fmt)[0]["description"]
    assert submit(client, fmt, address_string=None, lat="30.6").status_code == 400


@pytest.mark.parametrize("fmt", FORMATS)
def test_post_for_an_unknown_or_missing_service(client, fmt):
    unknown = submit(client, fmt, service_code="potholes")
    assert unknown.status_code == 404 and errors_of(unknown, fmt)[0]["code"] == 404
    missing = submit(client, fmt, service_code="")
    assert missing.status_code == 400 and "service_code" in errors_of(missing, fmt)[0]["description"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_required_and_typed_attributes_are_enforced(client, attributes, fmt):
    missing = submit(client, fmt, service_code="lift_entrapment", description="3栋电梯困人")
    assert missing.status_code == 400
    assert "attribute[people_trapped]" in errors_of(missing, fmt)[0]["description"]
    wrong = submit(client, fmt, service_code="lift_entrapment", **{"attribute[people_trapped]": "two"})
    assert wrong.status_code == 400
    bad_choice = submit(client, fmt, **{"attribute[still_leaking]": "maybe"})
    assert bad_choice.status_code == 400 and "maybe" in errors_of(bad_choice, fmt)[0]["description"]
    ok = submit(client, fmt, service_code="lift_entrapment", **{"attribute[people_trapped]": "2"})
    assert ok.status_code == 200


def test_several_errors_are_listed_together(client, attributes):
    response = submit(
        client, service_code="lift_entrapment", **{"attribute[people_trapped]": "", "attribute[lift_number]": "x"}
    )
    assert response.status_code == 400 and len(json_of(response)) == 1
    invalid = submit(client, lat="200", long="500", address_string=None)
    assert invalid.status_code == 400
    descriptions = " ".join(e["description"] for e in json_of(invalid))
    assert "lat" in descriptions and "long" in descriptions


def test_description_is_limited_to_4000_characters(client):
    assert submit(client, description="漏" * 4001).status_code == 400
    assert submit(client, description="漏" * 4000).status_code == 200


# ------------------------------------------------------------------------------------ GET requests


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_lists_recent_cases_with_the_specifications_elements(client, app, fmt):
    ref = make_case("firm_processing", resident_phone="13987654321")
    response = client.get(f"{BASE}/requests.{fmt}?jurisdiction_id=chizhou.gov.cn")
    assert response.status_code == 200
    if fmt == "xml":
        root = xml_of(response)
        assert all(item.tag == "request" and [c.tag for c in item] == REQUEST_ELEMENTS for item in root)
    items = {item["service_request_id"]: item for item in requests_of(response, fmt)}
    item = items[ref]
    assert list(item) == REQUEST_ELEMENTS
    assert item["status"] == "open" and item["service_code"] == "water_leak"
    assert item["agency_responsible"] == "池州红帆物业服务有限公司"
    assert item["address_id"] == "X01" and "阳光花园" in item["address"]
    assert item["requested_datetime"].endswith("+08:00")
    text = response.get_data(as_text=True)
    # never the resident's name, phone or unit, nor what staff typed for them
    assert "13987654321" not in text and "陈先生" not in text and "楼道水管漏水" not in text


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_filters_and_the_default_90_day_window(client, app, fmt):
    now = utcnow()
    old = make_case("grid_assigned", category="garbage", now=now - timedelta(days=120))
    closed = make_case("closed")
    open_ = make_case("grid_handling", category="noise")

    def ids(query: str) -> set[str]:
        response = client.get(f"{BASE}/requests.{fmt}?{query}")
        assert response.status_code == 200, response.data
        return {item["service_request_id"] for item in requests_of(response, fmt)}

    default = ids("")
    assert closed in default and open_ in default and old not in default
    assert ids("status=closed") >= {closed} and open_ not in ids("status=closed")
    assert open_ in ids("status=open") and closed not in ids("status=open")
    assert ids("status=open,closed") >= {open_, closed}
    assert open_ in ids("service_code=noise") and closed not in ids("service_code=noise")
    assert closed not in ids("service_code=noise,garbage")
    # a start date alone covers the 90 days after it
    window = ids(f"start_date={(now - timedelta(days=125)).strftime('%Y-%m-%dT%H:%M:%SZ')}")
    assert old in window and open_ not in window
    # service_request_id overrides every other filter, and empty parameters count as absent
    assert ids(f"service_request_id={old},{closed}&status=open&service_code=noise") == {old, closed}
    assert ids("status=&service_code=&start_date=&end_date=") == default


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize(
    "query",
    [
        "status=pending",
        "start_date=yesterday",
        "start_date=2026-01-01T00:00:00Z&end_date=2026-06-01T00:00:00Z",
        "start_date=2026-06-01T00:00:00Z&end_date=2026-01-01T00:00:00Z",
    ],
)
def test_bad_request_filters_are_400(client, fmt, query):
    response = client.get(f"{BASE}/requests.{fmt}?{query}")
    assert response.status_code == 400
    assert errors_of(response, fmt)[0]["code"] == 400


@pytest.mark.parametrize("fmt", FORMATS)
def test_one_request_is_a_list_of_one(client, app, fmt):
    ref = make_case("closed")
    response = client.get(f"{BASE}/requests/{ref}.{fmt}")
    assert response.status_code == 200
    (item,) = requests_of(response, fmt)
    assert item["service_request_id"] == ref and item["status"] == "closed"
    assert "Resolved, satisfied" in item["status_notes"] or "已解决" in item["status_notes"]
    missing = client.get(f"{BASE}/requests/KSM-20000101-9999.{fmt}")
    assert missing.status_code == 404 and errors_of(missing, fmt)[0]["code"] == 404


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_request_submitted_through_open311_shows_its_description(client, fmt):
    created = submit(client, fmt, description="楼道天花板一直在滴水，请尽快处理")
    ref = requests_of(created, fmt)[0]["service_request_id"]
    (item,) = requests_of(client.get(f"{BASE}/requests/{ref}.{fmt}"), fmt)
    assert item["description"] == "楼道天花板一直在滴水，请尽快处理"
    assert item["status"] == "open" and item["address_id"] == "X01"


# ------------------------------------------------------------------------------------------ tokens


@pytest.mark.parametrize("fmt", FORMATS)
def test_token_resolves_to_the_request_id(client, fmt):
    created = submit(client, fmt)
    ref = requests_of(created, fmt)[0]["service_request_id"]
    token = created.headers["X-Open311-Token"]
    response = client.get(f"{BASE}/tokens/{token}.{fmt}")
    assert response.status_code == 200
    (item,) = requests_of(response, fmt)
    assert item == {"service_request_id": ref, "token": token}
    missing = client.get(f"{BASE}/tokens/deadbeef.{fmt}")
    assert missing.status_code == 404 and errors_of(missing, fmt)[0]["code"] == 404


# ------------------------------------------------------------------------------------------- admin


def test_administrators_issue_an_open311_key_shown_once(client, auth, app):
    from tests.conftest import csrf_token

    auth.login("admin")
    token = csrf_token(client, "/admin/open311key/new/")
    response = client.post("/admin/open311key/new/", data={"csrf_token": token, "name": "城市随手拍"})
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    start = page.index('id="new-open311-key"')
    secret = page[page.index(">", start) + 1 : page.index("</code>", start)].strip()
    assert secret.startswith("o311_")
    with app.app_context():
        key = db.session.scalar(select(Open311Key).where(Open311Key.name == "城市随手拍"))
        assert key.key_hash == Open311Key.hash_key(secret) and secret not in (key.prefix, key.key_hash)
    assert secret not in client.get("/admin/open311key/").get_data(as_text=True)
    assert submit(client, api_key=secret).status_code == 200


def test_administrators_revoke_keys_and_others_cannot_open_the_screen(client, auth, app):
    from tests.conftest import csrf_token

    auth.login("supervisor1")
    assert client.get("/admin/open311key/").status_code == 403
    auth.logout()
    auth.login("admin")
    with app.app_context():
        key_id = db.session.scalar(select(Open311Key.id).where(Open311Key.key_hash == Open311Key.hash_key(API_KEY)))
    token = csrf_token(client, "/admin/open311key/")
    response = client.post(
        "/admin/open311key/action/", data={"csrf_token": token, "action": "revoke", "rowid": str(key_id)}
    )
    assert response.status_code == 302
    assert submit(client).status_code == 403
