"""The 12345 page for supervisors: upload a work-order export (dry run first), download the return sheet."""

from __future__ import annotations

import io
import re
import secrets
from datetime import date
from pathlib import Path

from flask import Blueprint, current_app, flash, render_template, request, send_file, session
from flask_babel import gettext as _
from flask_login import current_user

from app.auth import roles
from app.auth.permissions import role_required
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.hotline.importer import HotlineFileError, import_work_orders

bp = Blueprint("hotline", __name__)
ALLOWED = ("xlsx", "xls", "csv")
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")
PENDING_KEY = "hotline_pending"


PENDING_HOURS = 24


def _pending_dir() -> Path:
    """Where checked uploads wait for "import now"; files older than a day are removed."""
    import time

    path = Path(current_app.config["UPLOAD_DIR"]) / "hotline-pending"
    path.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - PENDING_HOURS * 3600
    for old in path.iterdir():
        try:
            if old.is_file() and old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass  # removed by another worker meanwhile
    return path


def _page(report=None, pending=None, status=200):
    today = to_local(utcnow()).date()
    return (
        render_template(
            "hotline/index.html",
            report=report,
            pending=pending,
            default_from=today.replace(day=1).isoformat(),
            default_to=today.isoformat(),
        ),
        status,
    )


@bp.route("/hotline")
@role_required(roles.SUPERVISOR, roles.ADMIN)
def index():
    return _page()


@bp.route("/hotline/import", methods=["POST"])
@role_required(roles.SUPERVISOR, roles.ADMIN)
def upload():
    """Check an uploaded export (nothing written) and keep it for the "import now" step."""
    upload = request.files.get("file")
    name = (upload.filename or "") if upload else ""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if not upload or suffix not in ALLOWED:
        flash(_("Choose a 12345 export: .xlsx, .xls or .csv."), "error")
        return _page(status=400)
    data = upload.read()
    try:
        report = import_work_orders(data, name, current_user)
    except HotlineFileError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _page(status=400)
    db.session.rollback()  # the dry run: everything checked, nothing kept
    token = secrets.token_hex(16)
    (_pending_dir() / f"{token}.{suffix}").write_bytes(data)
    session[PENDING_KEY] = {"token": token, "suffix": suffix, "name": name[:200]}
    return _page(report=report, pending=session[PENDING_KEY])


@bp.route("/hotline/import/confirm", methods=["POST"])
@role_required(roles.SUPERVISOR, roles.ADMIN)
def confirm():
    """Import the file checked by the dry run (only by the user who uploaded it)."""
    pending = session.get(PENDING_KEY) or {}
    token = request.form.get("token", "")
    if not TOKEN_RE.match(token) or pending.get("token") != token or pending.get("suffix") not in ALLOWED:
        flash(_("That upload is no longer waiting; upload the file again."), "error")
        return _page(status=400)
    path = _pending_dir() / f"{token}.{pending['suffix']}"
    if not path.is_file():
        session.pop(PENDING_KEY, None)
        flash(_("That upload is no longer waiting; upload the file again."), "error")
        return _page(status=400)
    try:
        report = import_work_orders(path.read_bytes(), pending["name"], current_user)
        db.session.commit()
    except HotlineFileError as error:
        db.session.rollback()
        flash(str(error), "error")
        return _page(status=400)
    finally:
        path.unlink(missing_ok=True)
        session.pop(PENDING_KEY, None)
    flash(
        _(
            "%(created)d new cases registered from 12345; %(skipped)d already imported; %(errors)d not placed.",
            created=len(report.created),
            skipped=len(report.skipped),
            errors=len(report.errors),
        ),
        "success" if not report.errors else "warning",
    )
    return _page(report=report)


@bp.route("/hotline/export")
@role_required(roles.SUPERVISOR, roles.ADMIN)
def export():
    """Download the return sheet for the work orders registered in the chosen days (the user's area)."""
    from app.core.replica import reading_from_replica
    from app.hotline.export import write_return_sheet

    try:
        start = date.fromisoformat(request.args.get("from", ""))
        end = date.fromisoformat(request.args.get("to", ""))
    except ValueError:
        flash(_("Give both dates as YYYY-MM-DD."), "error")
        return _page(status=400)
    try:
        with reading_from_replica():  # a large export: from the read replica when configured (issue 12)
            data, _count = write_return_sheet(current_user, start, end)
    except ValueError as error:
        flash(str(error), "error")
        return _page(status=400)
    return send_file(
        io.BytesIO(data),
        mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        as_attachment=True,
        download_name=f"12345-return-{start.isoformat()}-{end.isoformat()}.xlsx",
    )
