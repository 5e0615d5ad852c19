"""Open311 GeoReport v2 at ``/open311/v2`` (JSON and XML, chosen by the URL suffix).

Parameters are read from ``request.values`` (clients put ``api_key`` and ``jurisdiction_id`` in the
query string as often as in the form body); an empty parameter counts as absent. ``jurisdiction_id`` is
accepted and ignored: this endpoint serves one jurisdiction. Errors are the specification's list with
403 for a missing/invalid api_key, 404 for an unknown resource and 400 otherwise.
"""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, request
from werkzeug.exceptions import HTTPException

from app.core.errors import DomainError
from app.core.i18n import force_locale
from app.extensions import db
from app.open311 import services
from app.open311.formats import render, render_errors
from app.open311.services import Open311Error

bp = Blueprint("open311", __name__, url_prefix="/open311/v2")

FORMAT = "<any(json, xml):fmt>"


def _locale() -> str:
    if request.headers.get("Accept-Language"):
        best = request.accept_languages.best_match(["zh-CN", "zh", "en", "en-US", "en-GB"])
        if best:
            return "en" if best.startswith("en") else "zh_Hans_CN"
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def _check_values() -> None:
    """Raise :class:`Open311Error` 400 for parameters holding characters that cannot be stored."""
    for name, value in request.values.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise Open311Error(400, f"The parameter {name.replace(chr(0), '')} contains a NUL character.")


def open311_view(rule: str, methods: tuple[str, ...] = ("GET",)):
    """Register an endpoint: run it, commit once, and answer errors as the specification's list."""

    def decorator(view):
        @wraps(view)
        def wrapped(fmt: str, **kwargs):
            with force_locale(_locale()):
                try:
                    _check_values()
                    response = view(fmt, **kwargs)
                except Open311Error as error:
                    db.session.rollback()
                    return render_errors(fmt, error.status, error.errors)
                except DomainError as error:
                    db.session.rollback()
                    status = 404 if error.http_status == 404 else 403 if error.http_status == 403 else 400
                    return render_errors(fmt, status, [{"code": status, "description": error.message}])
                except HTTPException as error:  # e.g. a body larger than the server accepts
                    db.session.rollback()
                    status = error.code if error.code in (403, 404) else 400
                    return render_errors(fmt, status, [{"code": error.code, "description": error.description}])
                db.session.commit()
                return response

        bp.add_url_rule(rule, view.__name__, wrapped, methods=list(methods))
        return wrapped

    return decorator


@open311_view(f"/services.{FORMAT}")
def services_list(fmt: str):
    """GET Service List: one service per active category."""
    return render(fmt, "services", [services.service_view(c) for c in services.active_services()])


@open311_view(f"/services/<service_code>.{FORMAT}")
def service_definition(fmt: str, service_code: str):
    """GET Service Definition: the category's attributes (404 for an unknown service)."""
    return render(fmt, "service_definition", services.service_definition(services.service(service_code)))


@open311_view(f"/requests.{FORMAT}", methods=("GET", "POST"))
def requests_(fmt: str):
    """GET Service Requests (filters, default 90 days, at most 1000) and POST Service Request."""
    if request.method == "POST":
        key = services.check_api_key(request.values.get("api_key"))
        case, token = services.submit_request(request.values, key)
        body = [{"service_request_id": case.ref, "service_notice": services.service_notice(case), "account_id": None}]
        # the type of every service is "realtime": the id is in the body, so the specification leaves the
        # token out of it; the token is still issued (tokens/{token}) and named in a header
        return render(fmt, "service_requests", body, headers={"X-Open311-Token": token.token})
    found = services.search_requests(request.values)
    return render(fmt, "service_requests", [services.request_view(case) for case in found])


@open311_view(f"/requests/<service_request_id>.{FORMAT}")
def request_detail(fmt: str, service_request_id: str):
    """GET Service Request: a list of one (404 for an unknown id)."""
    return render(fmt, "service_requests", [services.request_view(services.request_by_id(service_request_id))])


@open311_view(f"/tokens/<token>.{FORMAT}")
def token_detail(fmt: str, token: str):
    """GET service_request_id from a token."""
    row, case = services.request_for_token(token)
    return render(fmt, "service_requests", [{"service_request_id": case.ref, "token": row.token}])


@bp.route("/<path:unknown>", methods=["GET", "POST"])
def not_found(unknown: str):
    """Anything else under /open311/v2 is an unknown resource (answered in JSON for a .json URL)."""
    fmt = "json" if unknown.endswith(".json") else "xml"
    return render_errors(fmt, 404, [{"code": 404, "description": f"No resource {unknown}; see services.xml."}])
