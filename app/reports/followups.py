"""Supervisors' review of follow-ups: marking one invalid (and valid again), on the case's history and in
the audit log."""

from __future__ import annotations

from datetime import datetime

from flask_babel import gettext as _
from sqlalchemy import select

from app.audit.services import record_audit
from app.auth import roles
from app.auth.permissions import in_scope
from app.cases.models import Case, FollowUp
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.timeutil import utcnow
from app.extensions import db
from app.reports import rollup

REVIEW_ROLES = (roles.SUPERVISOR, roles.ADMIN)


def can_review(user, case: Case) -> bool:
    """Supervisors of the case's area and administrators may mark its follow-ups invalid."""
    return getattr(user, "role", None) in REVIEW_ROLES and in_scope(user, case)


def set_follow_up_validity(
    follow_up_id: int, actor, valid: bool, reason: str | None, *, now: datetime | None = None
) -> FollowUp:
    """Mark a follow-up invalid (e.g. the resident could not be reached) or valid again.

    An invalid follow-up counts in no rate. The change is written on the case's history and in the
    audit log. Raises :class:`NotFound`, :class:`PermissionDenied`, :class:`ValidationError` (no reason)
    or :class:`Conflict` (already so).
    """
    from app.cases.services import lock_case, record_event

    now = now or utcnow()
    follow_up = db.session.get(FollowUp, follow_up_id) if isinstance(follow_up_id, int) else None
    case = db.session.get(Case, follow_up.case_id) if follow_up is not None else None
    if case is None or not in_scope(actor, case):
        raise NotFound(_("No such follow-up in your area."))
    if not can_review(actor, case):
        raise PermissionDenied(_("Only supervisors of this area can mark follow-ups invalid."))
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Say why the follow-up is not valid (or valid again)."), field="reason")
    if len(reason) > 500:
        raise ValidationError(_("The reason is longer than %(max)d characters.", max=500), field="reason")
    lock_case(case.id)
    db.session.refresh(follow_up)
    if follow_up.valid == valid:
        raise Conflict(
            _("This follow-up is already valid.") if valid else _("This follow-up is already marked invalid.")
        )
    follow_up.valid = valid
    follow_up.invalid_reason = None if valid else reason
    follow_up.invalidated_by_id = actor.id
    follow_up.invalidated_at = now
    rollup.mark_dirty(follow_up.created_at)  # the month's rolled-up counts no longer hold
    record_event(
        case,
        actor,
        "follow_up_valid" if valid else "follow_up_invalid",
        now=now,
        note=reason,
        payload={"follow_up_id": follow_up.id},
    )
    record_audit(
        actor,
        "follow_up.validated" if valid else "follow_up.invalidated",
        target=case,
        details={"follow_up_id": follow_up.id, "reason": reason},
    )
    db.session.flush()
    return follow_up


def follow_ups_of(case: Case) -> list[FollowUp]:
    return list(db.session.scalars(select(FollowUp).where(FollowUp.case_id == case.id).order_by(FollowUp.id)))
