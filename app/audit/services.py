"""Writing the audit log. Other features call :func:`record_audit`; it flushes, the caller commits.

What goes in ``details`` must never contain a resident's phone number or a secret (password, token):
callers pass references (case ref, token prefix) and changed field *names* with non-personal values.
"""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l

from app.audit.models import AuditEvent
from app.core.timeutil import utcnow
from app.extensions import db

#: how the administrators' page names each action
ACTION_LABELS = {
    "login.success": _l("Signed in"),
    "login.failed": _l("Failed sign-in"),
    "login.locked": _l("Account locked"),
    "logout": _l("Signed out"),
    "sessions.revoked": _l("Signed out everywhere"),
    "password.changed": _l("Password changed"),
    "password.reset": _l("Password reset by an administrator"),
    "user.created": _l("Account created"),
    "user.changed": _l("Account changed"),
    "user.unlocked": _l("Account unlocked"),
    "token.created": _l("API token created"),
    "token.revoked": _l("API token revoked"),
    "open311_key.created": _l("Open311 key issued"),
    "open311_key.revoked": _l("Open311 key revoked"),
    "config.changed": _l("Configuration changed"),
    "phone.revealed": _l("Resident's phone revealed"),
    "data.exported": _l("Data exported"),
    "resident.exported": _l("Resident's data exported"),
    "resident.anonymised": _l("Resident anonymised"),
    "rating.computed": _l("Firm ratings computed"),
    "rating.recomputed": _l("Frozen firm ratings recomputed"),
    "rating.adjusted": _l("Firm rating adjusted"),
    "follow_up.invalidated": _l("Follow-up marked invalid"),
    "follow_up.validated": _l("Follow-up marked valid again"),
}

#: the actions written today (free text is allowed; these are the ones the admin filter offers)
ACTIONS = (
    "login.success",
    "login.failed",
    "login.locked",
    "logout",
    "sessions.revoked",
    "password.changed",
    "password.reset",
    "user.created",
    "user.changed",
    "user.unlocked",
    "token.created",
    "token.revoked",
    "open311_key.created",
    "open311_key.revoked",
    "config.changed",
    "phone.revealed",
    "data.exported",
    "resident.exported",
    "rating.computed",
    "rating.recomputed",
    "rating.adjusted",
    "follow_up.invalidated",
    "follow_up.validated",
    "resident.anonymised",
)


def _target_parts(target: Any) -> tuple[str | None, str | None, str | None]:
    if target is None:
        return None, None, None
    if isinstance(target, str):
        return None, None, target[:120]
    kind = getattr(target, "__tablename__", type(target).__name__.lower())
    ident = getattr(target, "ref", None) or getattr(target, "id", None)
    label = getattr(target, "ref", None) or str(target)  # a case reads as its reference
    return kind[:32], (str(ident)[:64] if ident is not None else None), label[:120]


def record_audit(actor, action: str, target: Any = None, details: dict[str, Any] | None = None) -> AuditEvent:
    """Append one line to the audit log and flush it; returns the row.

    ``actor`` is a user or None (anonymous / system); ``target`` a model instance or a label. The client
    address is taken from the request when there is one (after ``TRUSTED_PROXIES``). Raises nothing of
    its own; database errors propagate so the caller's transaction fails as a whole.
    """
    kind, ident, label = _target_parts(target)
    row = AuditEvent(
        created_at=utcnow(),
        actor_id=getattr(actor, "id", None),
        actor_name=(getattr(actor, "username", None) or "-")[:64],
        action=action[:48],
        target_type=kind,
        target_id=ident,
        target_label=label,
        ip=(request.remote_addr or None) if has_request_context() else None,
        details=details or None,
    )
    db.session.add(row)
    db.session.flush()
    return row
