"""Authorization matrix generated from ``app.url_map``: every route × every role × an object inside and
one outside the user's scope → the expected answer.

**A route added without an entry in ``EXPECTED`` fails** :func:`test_every_route_has_an_expectation`.
Flask-Admin screens (everything under ``/admin/``) follow one rule, :data:`ADMIN_RULE`; static files
are listed in :data:`NOT_CHECKED` with the reason.

Answers: ``ok`` (the route did its work or refused the *input* — 200, 201, 302 elsewhere than the
login page, 400, 409, 422: authorization was passed), ``403``, ``404`` (existence is private),
``login`` (302 to the sign-in page), ``401`` (REST API without a valid token), ``405``.

Objects: a case at compound X01 in ``firm_processing`` (inside everyone's scope: station ST01 /
community C01, grid G01, firm F01, X01's party branch) and one at X05 (community C02, grid G03, firm F02,
no party branch): outside everyone's scope except the street supervisor's (the demo has one street)
and the administrator's.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from app.auth.services import create_token
from app.cases.models import Case
from app.extensions import db
from app.notify.models import Notification
from tests.conftest import CSRF_RE
from tests.factories import PNG, make_case, user

#: matrix role → demo account (None: anonymous)
ROLES = {
    "clerk": "clerk1",
    "grid_worker": "grid1",
    "property_manager": "firm1",
    "branch_secretary": "branch1",
    "community_supervisor": "supervisor1",
    "street_supervisor": "street1",
    "admin": "admin",
    "anonymous": None,
}
STAFF = frozenset(ROLES) - {"anonymous"}
EVERYONE = frozenset(ROLES)
#: who sees the case outside the ordinary scopes (X05)
SEES_OUTSIDE = frozenset({"street_supervisor", "admin"})
INTAKE = frozenset({"clerk", "grid_worker", "community_supervisor", "street_supervisor", "admin"})
SUPERVISORS = frozenset({"community_supervisor", "street_supervisor", "admin"})
RECEIPT = frozenset({"clerk", "grid_worker", "admin"})
FIRM = frozenset({"property_manager"})
RATINGS = SUPERVISORS | FIRM
RATING_MANAGERS = frozenset({"street_supervisor", "admin"})


@dataclass(frozen=True)
class Route:
    """How to call one route and who passes its authorization.

    ``path`` may hold ``{ref}`` (the case), ``{attachment}``, ``{notification}``, ``{token}`` (an API
    token id of the user), ``{code}`` (the case's sign-off code). ``allowed`` roles answer ``ok`` on the
    inside object; other signed-in roles answer ``refused``; anonymous ``anonymous``. With ``case=True``
    an allowed role answers ``404`` on the outside object unless it is in ``SEES_OUTSIDE``.
    """

    method: str
    path: str
    allowed: frozenset = STAFF
    refused: str = "403"
    anonymous: str = "login"
    case: bool = False
    data: dict = field(default_factory=dict)
    api: bool = False
    #: ends the session (log out): run with a fresh sign-in
    ends_session: bool = False
    #: the role is checked before the object (``role_required``): a refused role gets 403 even outside
    role_first: bool = False


def api(method, path, allowed=STAFF, case=False, data=None, role_first=False):
    return Route(
        method, path, allowed=allowed, case=case, data=data or {}, api=True, anonymous="401", role_first=role_first
    )


PUBLIC = {"allowed": EVERYONE, "anonymous": "ok"}

#: THE TABLE. Keys are endpoints of ``app.url_map``; Flask-Admin screens use ADMIN_RULE.
EXPECTED: dict[str, Route] = {
    # -- public and account pages
    "main.healthz": Route("GET", "/healthz", **PUBLIC),
    # Prometheus: answered on loopback (the test client's address) or with METRICS_TOKEN; a public client
    # gets 404 (tests/test_observability.py) — the scraper is not a user
    "metrics": Route("GET", "/metrics", **PUBLIC),
    "main.index": Route("GET", "/"),
    "main.set_language": Route("POST", "/language", data={"locale": "en"}, **PUBLIC),
    "auth.login": Route("GET", "/login", **PUBLIC),
    "auth.logout": Route("POST", "/logout", ends_session=True),
    "auth.profile": Route("GET", "/profile"),
    "auth.create_token": Route("POST", "/profile/tokens", data={"token-name": ""}),
    "auth.revoke_token": Route("POST", "/profile/tokens/{token}/revoke"),
    "auth.sign_out_everywhere": Route("POST", "/profile/sessions/revoke", ends_session=True),
    "cases.track": Route("GET", "/track", **PUBLIC),
    "cases.resident_signoff": Route("GET", "/s/{code}", **PUBLIC),
    "cases.signoff_code": Route("GET", "/s", **PUBLIC),
    # only photos of the completed work are shown to residents: the world's photo is not one (404 for all)
    "cases.resident_photo": Route(
        "GET", "/s/{code}/photos/{attachment}", allowed=frozenset(), refused="404", anonymous="404"
    ),
    # intake helpers (JSON): the caller's earlier cases, the duplicate hint
    "cases.caller_history": Route("GET", "/cases/callers?phone=13812345678", allowed=INTAKE, role_first=True),
    "cases.duplicate_hint": Route(
        "GET", "/cases/duplicates?category=water_leak&compound=1", allowed=INTAKE, role_first=True
    ),
    # one case, many callers
    "cases.link_report": Route("POST", "/cases/{ref}/reports", case=True, allowed=INTAKE, role_first=True),
    "cases.report_receipt": Route(
        "GET", "/cases/{ref}/reports/{report}/receipt", case=True, allowed=RECEIPT, role_first=True
    ),
    "cases.unlink_report": Route(
        "POST", "/cases/{ref}/reports/{report}/unlink", case=True, allowed=SUPERVISORS, role_first=True
    ),
    "notify.inbox": Route("GET", "/inbox"),
    "notify.read_all": Route("POST", "/inbox/read-all"),
    # a notification belongs to one user: everyone else gets 404
    "notify.open_notification": Route("POST", "/inbox/{notification}/open"),
    # -- cases (web)
    "cases.index": Route("GET", "/cases"),
    "cases.new": Route("GET", "/cases/new", allowed=INTAKE, role_first=True),
    "cases.show": Route("GET", "/cases/{ref}", case=True),
    "cases.diagram": Route("GET", "/cases/{ref}/diagram.svg", case=True),
    "cases.receipt": Route("GET", "/cases/{ref}/receipt", case=True, allowed=RECEIPT, role_first=True),
    # the trigger decides who may fire it: "hold" is the firm's (who may see the case learns no more)
    "cases.act": Route("POST", "/cases/{ref}/actions/hold", case=True, allowed=FIRM),
    "cases.add_note": Route("POST", "/cases/{ref}/notes", case=True, data={"note": ""}),
    "cases.upload": Route("POST", "/cases/{ref}/attachments", case=True),
    "cases.attachment": Route("GET", "/cases/{ref}/attachments/{attachment}", case=True),
    "cases.reassign": Route("POST", "/cases/{ref}/reassign", case=True, allowed=SUPERVISORS, role_first=True),
    "privacy.reveal_phone": Route("GET", "/cases/{ref}/phone", case=True),
    "sla.request_extension": Route("POST", "/cases/{ref}/extension", case=True, allowed=FIRM),
    "sla.decide_extension": Route("POST", "/cases/{ref}/extension/decide", case=True, allowed=SUPERVISORS),
    "sla.urge": Route("POST", "/cases/{ref}/urge", case=True, allowed=SUPERVISORS),
    "sla.shelve": Route("POST", "/cases/{ref}/shelve", case=True, allowed=SUPERVISORS),
    "sla.unshelve": Route("POST", "/cases/{ref}/unshelve", case=True, allowed=SUPERVISORS),
    # -- REST API (bearer tokens; a session cookie is not a credential there)
    "api.openapi": Route("GET", "/api/v1/openapi.json", **PUBLIC),
    "api.docs": Route("GET", "/api/v1/docs", **PUBLIC),
    "api.me": api("GET", "/api/v1/me"),
    "api.list_cases": api("GET", "/api/v1/cases"),
    "api.create_case": api("POST", "/api/v1/cases", allowed=INTAKE, data={}),
    "api.get_case": api("GET", "/api/v1/cases/{ref}", case=True),
    "api.list_events": api("GET", "/api/v1/cases/{ref}/events", case=True),
    "api.fire_transition": api("POST", "/api/v1/cases/{ref}/transitions", case=True, data={}),
    "api.add_note": api("POST", "/api/v1/cases/{ref}/notes", case=True, data={}),
    "api.upload_attachment": api("POST", "/api/v1/cases/{ref}/attachments", case=True, data={}),
    "api.reveal_phone": api("POST", "/api/v1/cases/{ref}/phone-reveals", case=True, data={}, allowed=FIRM),
    "api.list_categories": api("GET", "/api/v1/categories"),
    "api.organisation": api("GET", "/api/v1/organisation"),
    "api.rates": api("GET", "/api/v1/rates"),
    "api.indicators_view": api("GET", "/api/v1/indicators"),
    "api.ratings_view": api("GET", "/api/v1/ratings", allowed=RATINGS),
    # -- supervision and reporting (issue 8)
    "reports.board": Route("GET", "/board", allowed=SUPERVISORS, role_first=True),
    "reports.bulk_urge": Route("POST", "/board/urge", allowed=SUPERVISORS, role_first=True, data={"note": ""}),
    "reports.reports_home": Route("GET", "/reports", allowed=SUPERVISORS, role_first=True),
    "reports.dashboard": Route("GET", "/reports/dashboard", allowed=SUPERVISORS, role_first=True),
    "reports.dashboard_csv": Route("GET", "/reports/dashboard.csv?table=detail", allowed=SUPERVISORS, role_first=True),
    "reports.bulletin": Route("GET", "/reports/bulletin?month=2026-11", allowed=SUPERVISORS, role_first=True),
    "reports.bulletin_download": Route(
        "GET", "/reports/bulletin.csv?month=2026-11", allowed=SUPERVISORS, role_first=True
    ),
    "reports.ratings": Route("GET", "/reports/ratings", allowed=RATINGS, role_first=True),
    "reports.firm_history": Route("GET", "/reports/ratings/F01", allowed=RATINGS, role_first=True),
    # computing and adjusting ratings: street supervisors and administrators (a community's may read)
    "reports.compute_ratings": Route(
        "POST", "/reports/ratings/compute", allowed=RATING_MANAGERS, role_first=True, data={"month": "2026-10"}
    ),
    "reports.adjust_rating": Route(
        "POST",
        "/reports/ratings/adjust",
        allowed=RATING_MANAGERS,
        role_first=True,
        data={"month": "2026-10", "firm": "F01", "points": "1", "reason": "matrix"},
    ),
    # no such follow-up: supervisors are told so (a message), everyone else is refused first
    "reports.follow_up_validity": Route(
        "POST", "/follow-ups/999999/validity", allowed=SUPERVISORS, role_first=True, data={"reason": "x"}
    ),
    # -- 12345 hotline work orders (issue 11)
    "hotline.index": Route("GET", "/hotline", allowed=SUPERVISORS, role_first=True),
    "hotline.upload": Route("POST", "/hotline/import", allowed=SUPERVISORS, role_first=True),
    "hotline.confirm": Route("POST", "/hotline/import/confirm", allowed=SUPERVISORS, role_first=True),
    "hotline.export": Route("GET", "/hotline/export", allowed=SUPERVISORS, role_first=True),
    "notify.preferences": Route("GET", "/inbox/channels"),
    # the SMS providers' reply callback: only with the shared secret in the URL
    "notify.sms_replies": Route("POST", "/sms/replies/tencent", allowed=frozenset(), refused="403", anonymous="403"),
    # -- Open311 (public GeoReport v2; api_key for POST, not users)
    "open311.services_list": Route("GET", "/open311/v2/services.json", **PUBLIC),
    "open311.service_definition": Route("GET", "/open311/v2/services/water_leak.json", **PUBLIC),
    "open311.requests_": Route("GET", "/open311/v2/requests.json", **PUBLIC),
    "open311.request_detail": Route("GET", "/open311/v2/requests/{ref}.json", **PUBLIC),
    "open311.token_detail": Route(
        "GET", "/open311/v2/tokens/nope.json", allowed=frozenset(), refused="404", anonymous="404"
    ),
    "open311.not_found": Route("GET", "/open311/v2/nothing.json", allowed=frozenset(), refused="404", anonymous="404"),
}

#: Flask-Admin: administrators only; anyone else signed in 403, anonymous to the sign-in page
ADMIN_RULE = {"admin": "ok", "anonymous": "login", "default": "403"}
#: what an administrator gets from screens called without a real target (no lookup is configured)
ADMIN_ANSWERS = {".ajax_lookup": "404"}
#: endpoints not called, with the reason
NOT_CHECKED = {
    "static": "public files of the app",
    "bootstrap.static": "public files of Bootstrap",
    "admin.static": "public files of Flask-Admin",
}


def _is_admin_endpoint(app, endpoint: str) -> bool:
    rules = [r for r in app.url_map.iter_rules() if r.endpoint == endpoint]
    return all(r.rule.startswith("/admin/") for r in rules) and endpoint not in NOT_CHECKED


def missing_endpoints(app) -> list[str]:
    """Endpoints of ``app`` that the matrix does not cover."""
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()}
    return sorted(e for e in endpoints if e not in EXPECTED and e not in NOT_CHECKED and not _is_admin_endpoint(app, e))


def test_every_route_has_an_expectation(app):
    missing = missing_endpoints(app)
    assert missing == [], f"add these routes to EXPECTED in {__file__}: {missing}"
    stale = sorted(set(EXPECTED) - {rule.endpoint for rule in app.url_map.iter_rules()})
    assert stale == [], f"EXPECTED names routes that no longer exist: {stale}"


def test_a_new_route_without_an_entry_is_reported(tmp_path):
    from app import create_app
    from config import TestingConfig

    other = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'x.db'}")
    other.add_url_rule("/reports/new-thing", "reports.new_thing", lambda: "x")
    assert missing_endpoints(other) == ["reports.new_thing"]


def expected_answer(route: Route, role: str, outside: bool) -> str:
    """What ``role`` gets from ``route`` on the inside or outside object."""
    if role == "anonymous":
        return route.anonymous
    if route.role_first and role not in route.allowed:
        return route.refused
    if route.case and outside and role not in SEES_OUTSIDE:
        return "404"  # existence outside one's scope is private, whatever the role
    if role not in route.allowed:
        return route.refused
    return "ok"


def classify(response) -> str:
    status = response.status_code
    # a page that needs a signed-in user sends anonymous visitors to /login?next=…; a logout's own
    # redirect to the sign-in page (no "next") is the route doing its work
    if status in (301, 302, 303) and "/login?next=" in response.headers.get("Location", ""):
        return "login"
    if status in (401, 403, 404, 405) or status >= 500:
        return str(status)
    return "ok"


# ----------------------------------------------------------------------------------------- harness


class World:
    """The objects and signed-in clients the matrix uses (created once per test, rolled back after)."""

    def __init__(self, app):
        self.app = app
        self.inside = make_case("firm_processing", compound="X01")
        self.outside = make_case("firm_processing", compound="X05")
        with app.app_context():
            self.codes = {}
            self.attachments = {}
            for ref in (self.inside, self.outside):
                case = db.session.scalar(select(Case).where(Case.ref == ref))
                self.codes[ref] = case.signoff_token
                from app.cases.attachments import store

                self.attachments[ref] = store(case, PNG, "a.png", user("admin")).id
            grid1 = user("grid1")
            from app.cases import reports as case_reports
            from app.core.timeutil import utcnow

            self.reports = {}
            for ref in (self.inside, self.outside):
                case = db.session.scalar(select(Case).where(Case.ref == ref))
                self.reports[ref] = case_reports.link_report(
                    case, user("admin"), resident_name="王女士", resident_phone="13900001111", description="同一处漏水"
                ).ref
            note = Notification(user_id=grid1.id, kind="test", title="t", body="b", case_id=None, created_at=utcnow())
            db.session.add(note)
            db.session.flush()
            self.notification = note.id
            self.tokens, self.token_ids = {}, {}
            for role, username in ROLES.items():
                if username:
                    _token, self.tokens[role] = create_token(user(username), "matrix")
                    # a second token, for the revoke route (revoking the first would end the API calls)
                    self.token_ids[role] = create_token(user(username), "to revoke")[0].id
            db.session.commit()
        self.clients = {}

    def client(self, role: str, fresh: bool = False):
        if role in self.clients and not fresh:
            return self.clients[role]
        client = self.app.test_client()
        username = ROLES[role]
        if username:
            page = client.get("/login").get_data(as_text=True)
            token = CSRF_RE.search(page).group(1)
            response = client.post("/login", data={"username": username, "password": "Demo@2026", "csrf_token": token})
            assert response.status_code == 302, (role, response.status_code)
        if not fresh:
            self.clients[role] = client
        return client

    def csrf(self, client, role) -> str:
        page = client.get("/profile" if ROLES[role] else "/login").get_data(as_text=True)
        return CSRF_RE.search(page).group(1)

    def call(self, route: Route, role: str, outside: bool):
        ref = self.outside if outside else self.inside
        path = route.path.format(
            ref=ref,
            attachment=self.attachments[ref],
            notification=self.notification,
            token=self.token_ids.get(role, 1),
            code=self.codes[ref],
            report=self.reports[ref],
        )
        client = self.client(role, fresh=route.ends_session)
        if route.ends_session:
            self.clients.pop(role, None)  # "sign out everywhere" ends the cached session too
        if route.api:
            headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role in self.tokens else {}
            if route.method == "GET":
                return client.get(path, headers=headers)
            if path.endswith("/attachments"):
                return client.post(path, headers=headers, data={}, content_type="multipart/form-data")
            return client.post(path, headers=headers, json=route.data)
        if route.method == "GET":
            return client.get(path)
        data = {"csrf_token": self.csrf(client, role), **route.data}
        if path.endswith("/attachments"):
            data["photos"] = (io.BytesIO(b"not an image"), "x.txt")
            return client.post(path, data=data, content_type="multipart/form-data")
        return client.post(path, data=data)


def test_web_api_and_open311_routes_answer_as_the_matrix_says(app):
    world = World(app)
    wrong = []
    for endpoint, route in EXPECTED.items():
        for role in ROLES:
            for outside in (False, True) if route.case or "{ref}" in route.path else (False,):
                expected = expected_answer(route, role, outside)
                answer = classify(world.call(route, role, outside))
                if answer != expected:
                    wrong.append(
                        f"{endpoint} {role} {'outside' if outside else 'inside'}: {answer} (expected {expected})"
                    )
    assert wrong == [], "\n".join(wrong)


def _admin_urls(app) -> list[tuple[str, str, str]]:
    """(endpoint, method, url) for every Flask-Admin screen, with harmless parameters."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not _is_admin_endpoint(app, rule.endpoint):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?export_type>", "csv", rule.rule)
        if "<" in path:
            continue
        if rule.endpoint.endswith((".details_view", ".edit_view")):
            path += "?id=1"
        method = "GET" if "GET" in rule.methods else "POST"
        urls.append((rule.endpoint, method, path))
    return sorted(urls)


def test_every_admin_screen_is_for_administrators_only(app):
    world = World(app)
    urls = _admin_urls(app)
    assert len(urls) > 100  # 19 screens × their views
    wrong = []
    for role in ROLES:
        client = world.client(role)
        token = world.csrf(client, role)
        for endpoint, method, url in urls:
            expected = ADMIN_RULE.get(role, ADMIN_RULE["default"])
            if role == "admin":
                expected = next((a for suffix, a in ADMIN_ANSWERS.items() if endpoint.endswith(suffix)), expected)
            if method == "GET":
                response = client.get(url)
            else:
                response = client.post(url, data={"csrf_token": token})
            answer = classify(response)
            if answer != expected:
                wrong.append(f"{endpoint} {role}: {answer} (expected {expected})")
    assert wrong == [], "\n".join(wrong)


@pytest.mark.parametrize("role", sorted(STAFF))
def test_the_matrix_accounts_have_the_roles_it_names(app, role):
    with app.app_context():
        account = user(ROLES[role])
        assert account.role == {"community_supervisor": "supervisor", "street_supervisor": "supervisor"}.get(role, role)
        assert (role == "street_supervisor") == (account.street_id is not None)
