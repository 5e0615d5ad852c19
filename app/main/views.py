"""Home page, ``/healthz``, the language switch and the error pages."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from sqlalchemy import text
from werkzeug.exceptions import HTTPException

from app.auth.views import _safe_next
from app.extensions import db

bp = Blueprint("main", __name__)


@bp.route("/")
@login_required
def index():
    """Supervisors start from the overdue board, everyone else from the cases in their area."""
    from app.auth import roles

    if current_user.role == roles.SUPERVISOR:
        return redirect(url_for("reports.board"))
    return redirect(url_for("cases.index"))


@bp.route("/healthz")
def healthz():
    """Liveness and database check for load balancers: 200 when the database answers, else 503."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - any database failure means "not healthy"
        db.session.rollback()
        current_app.logger.exception("health check: database unreachable")
        return jsonify(status="error", db="unreachable"), 503
    return jsonify(status="ok", db="ok", scheduler=_scheduler_health(), replica=_replica_health())


def _scheduler_health() -> dict:
    """The last successful sweep of any scheduler process (``job_run``) and how old it is."""
    from app.core import heartbeat
    from app.core.timeutil import utcnow

    try:
        sweep = heartbeat.last_success("sweep")
    except Exception:  # noqa: BLE001 - a database before migration 0010: say so, stay healthy
        db.session.rollback()
        return {"last_sweep": None, "age_seconds": None}
    if sweep is None:
        return {"last_sweep": None, "age_seconds": None}
    return {
        "last_sweep": sweep.last_success_at.isoformat(timespec="seconds"),
        "age_seconds": round((utcnow() - sweep.last_success_at).total_seconds(), 1),
        "last_duration_ms": sweep.duration_ms,
        "last_escalated": sweep.count,
    }


def _replica_health() -> dict:
    from app.core import replica

    configured = bool(current_app.config.get("REPLICA_DATABASE_URL"))
    return {"configured": configured, "lag_seconds": replica.lag_seconds() if configured else None}


@bp.route("/language", methods=["POST"])
def set_language():
    """Switch the interface language; remembered in the session and, when signed in, on the account."""
    code = request.form.get("locale", "")
    if code in current_app.config["LANGUAGES"]:
        session["locale"] = code
        if current_user.is_authenticated:
            current_user.locale = code
            db.session.commit()
    return redirect(_safe_next(request.form.get("next")) or url_for("main.index"))


def wants_json() -> bool:
    if request.path.startswith(("/api/", "/healthz")):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


ERROR_TITLES = {
    400: lambda: _("The request could not be understood"),
    401: lambda: _("Please sign in"),
    403: lambda: _("You may not open this page"),
    404: lambda: _("Page not found"),
    405: lambda: _("This action is not allowed here"),
    409: lambda: _("Someone else changed this first"),
    413: lambda: _("The upload is too large"),
    422: lambda: _("Some input was not valid"),
    429: lambda: _("Too many requests"),
    500: lambda: _("Something went wrong on our side"),
    503: lambda: _("The service is temporarily unavailable"),
}


def render_error(status: int, description: str | None = None):
    title = ERROR_TITLES.get(status, ERROR_TITLES[500])()
    if wants_json():
        body = {"error": {"code": f"http_{status}", "message": title}}
        if description:
            body["error"]["detail"] = description
        return jsonify(body), status
    return render_template("errors/error.html", status=status, title=title, description=description), status


def register_error_handlers(app) -> None:
    @app.errorhandler(HTTPException)
    def handle_http(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        description = None
        if error.code in (400, 413, 422) and error.description and "browser (or proxy)" not in error.description:
            description = error.description
        return render_error(error.code, description)

    @app.errorhandler(Exception)
    def handle_unexpected(error: Exception):
        db.session.rollback()
        if app.testing and not app.config.get("RENDER_500_IN_TESTS"):
            raise error  # let the test see the traceback
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return render_error(500)
