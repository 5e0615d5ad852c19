"""Property-firm credit rating (DESIGN §6): a monthly score 0–100 per firm, grades A/B/C/D, frozen.

The score comes from the firm's own facts of the month (:mod:`app.reports.indicators` with the ``firm``
slice, so each firm is judged on the steps it handled):

    points = 15 × on-time acceptance + 25 × on-time completion + 40 × satisfaction
             + 20 × (1 − reopen ratio)          (weights: RATING_WEIGHTS)
    reopen ratio = (resident send-backs + supervisor reopens) ÷ sign-off steps ended
    base score   = points − 2 per yellow card − 5 per red card (at most 30 off; RATING_CARD_POINTS)
    score        = base score + supervisors' adjustments, kept within 0 … 100

A component without data that month (e.g. no follow-up) is left out and the others are scaled up to
100; a firm with no data at all is not rated. Grades: A ≥ 90, B ≥ 75, C ≥ 60, D below (RATING_BANDS).
A firms are marked for priority in government programmes; D firms are restricted — no awards and no
tenders for three years from the rating date.

A computed month is frozen: computing it again returns the stored rating, whatever happened to the
cases since; only an explicit recompute with a reason (in the audit log) replaces it. With a read replica
configured, the figures are read there once it has replayed everything the primary holds (else on the
primary); the ratings and the audit line are always written on the primary (issue 12). Adjustments are added to a
frozen month and change its score and grade, each with its points, reason and author (logged).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from flask import current_app, g, has_app_context
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, select

from app.audit.services import record_audit
from app.auth import roles
from app.cases.actors import SYSTEM_ACTOR
from app.core.errors import Conflict, PermissionDenied, ValidationError
from app.core.timeutil import to_local, utcnow
from app.extensions import db
from app.org.models import PropertyFirm
from app.reports import indicators
from app.reports.models import FirmRating, RatingAdjustment

DEFAULT_WEIGHTS = {"acceptance": 15.0, "completion": 25.0, "satisfaction": 40.0, "reopen": 20.0}
DEFAULT_CARD_POINTS = {"yellow": 2.0, "red": 5.0}
MAX_CARD_DEDUCTION = 30.0
DEFAULT_BANDS = {"A": 90.0, "B": 75.0, "C": 60.0}
RESTRICTION_YEARS = 3
MAX_ADJUSTMENT = 20.0

COMPONENT_LABELS = {
    "acceptance": _l("On-time acceptance"),
    "completion": _l("On-time completion"),
    "satisfaction": _l("Satisfaction rate"),
    "reopen": _l("No send-back or reopen"),
}
GRADE_CONSEQUENCES = {
    "A": _l("Priority in government programmes"),
    "B": _l("No consequence"),
    "C": _l("Warned: improvement expected"),
    "D": _l("Restricted: no awards, excluded from tenders for three years"),
}


def _config(name: str, default: dict[str, float]) -> dict[str, float]:
    configured = current_app.config.get(name) if has_app_context() else None
    return {**default, **(configured or {})}


def settings() -> dict[str, dict[str, float]]:
    """The weights, card deductions and grade bands in force."""
    return {
        "weights": _config("RATING_WEIGHTS", DEFAULT_WEIGHTS),
        "cards": _config("RATING_CARD_POINTS", DEFAULT_CARD_POINTS),
        "bands": _config("RATING_BANDS", DEFAULT_BANDS),
    }


def grade_for(score: float | None, bands: dict[str, float] | None = None) -> str | None:
    if score is None:
        return None
    bands = bands or settings()["bands"]
    for grade in ("A", "B", "C"):
        if score >= bands[grade]:
            return grade
    return "D"


def restricted_until(grade: str | None, rated_on: date) -> date | None:
    """D: three years from the rating date (29 February falls back to 28)."""
    if grade != "D":
        return None
    try:
        return rated_on.replace(year=rated_on.year + RESTRICTION_YEARS)
    except ValueError:
        return rated_on.replace(year=rated_on.year + RESTRICTION_YEARS, day=28)


@dataclass
class Scored:
    base_score: float | None
    components: dict[str, Any]


def score_row(row: indicators.Row) -> Scored:
    """The base score and its components from one firm's figures of the month."""
    config = settings()
    weights, card_points = config["weights"], config["cards"]
    rates: dict[str, float | None] = {
        "acceptance": row.on_time_acceptance_rate,
        "completion": row.on_time_completion_rate,
        "satisfaction": row.satisfaction_rate,
    }
    signoffs = row.counts["signoff_steps"]
    returned = row.counts["sent_back"] + row.counts["reopens"]
    rates["reopen"] = round(max(0.0, 1 - returned / signoffs), 4) if signoffs else None
    present = {name: value for name, value in rates.items() if value is not None}
    components: dict[str, Any] = {
        "rates": rates,
        "weights": weights,
        "counts": {
            "accept_steps": row.counts["accept_steps"],
            "handle_steps": row.counts["handle_steps"],
            "follow_ups": row.counts["follow_ups"],
            "signoff_steps": signoffs,
            "sent_back": row.counts["sent_back"],
            "reopens": row.counts["reopens"],
            "yellow_cards": row.counts["yellow_cards"],
            "red_cards": row.counts["red_cards"],
        },
    }
    if not present:
        components.update(points={}, card_deduction=0.0)
        return Scored(None, components)
    scale = sum(weights.values()) / sum(weights[name] for name in present)
    points = {name: round(weights[name] * value * scale, 2) for name, value in present.items()}
    deduction = min(
        MAX_CARD_DEDUCTION,
        card_points["yellow"] * row.counts["yellow_cards"] + card_points["red"] * row.counts["red_cards"],
    )
    components.update(points=points, card_deduction=deduction)
    base = max(0.0, min(100.0, sum(points.values()) - deduction))
    return Scored(round(base, 1), components)


def _final(base: float | None, adjustments: list[RatingAdjustment]) -> float | None:
    if base is None:
        return None
    return round(max(0.0, min(100.0, base + sum(a.points for a in adjustments))), 1)


def _month(label: str) -> indicators.Period:
    """Raises :class:`ValidationError` unless ``label`` is a month like 2026-11."""
    period = indicators.parse_period(label)
    if period.kind != "month":
        raise ValidationError(_("A rating is for one month, such as 2026-11."), field="month")
    return period


def _actor_name(actor) -> str:
    return (getattr(actor, "display_name", None) or "system")[:64]


def can_manage(user) -> bool:
    """Street supervisors and administrators compute, recompute and adjust ratings."""
    return getattr(user, "role", None) == roles.ADMIN or (
        getattr(user, "role", None) == roles.SUPERVISOR and getattr(user, "street_id", None) is not None
    )


def can_view_ratings(user) -> bool:
    return getattr(user, "role", None) in (roles.SUPERVISOR, roles.ADMIN, roles.PROPERTY_MANAGER)


def visible_firms(user):
    """The firms whose ratings ``user`` may read: all for supervisors and administrators, one's own firm."""
    query = select(PropertyFirm).order_by(PropertyFirm.code)
    if getattr(user, "role", None) == roles.PROPERTY_MANAGER:
        query = query.where(PropertyFirm.id == user.firm_id)
    elif not can_view_ratings(user):
        query = query.where(PropertyFirm.id.is_(None))
    return query


def provisional(month: str, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """The rating a month would get now (not stored), for every firm."""
    period = _month(month)
    # the score reads the month's rates and counts only: no backlog, no handling-time percentile (a scan of
    # the month's facts that grows with the city)
    report = indicators.compute(SYSTEM_VIEWER, period, "firm", now=now, with_backlog=False, with_p90=False)
    rows = {row.key: row for row in report.rows}
    rated_on = to_local(now or utcnow()).date()
    result = []
    for firm in db.session.scalars(select(PropertyFirm).order_by(PropertyFirm.code)):
        scored = score_row(rows.get(firm.id) or indicators.Row(firm.id))
        grade = grade_for(scored.base_score)
        result.append(
            {
                "firm": firm,
                "base_score": scored.base_score,
                "score": scored.base_score,
                "grade": grade,
                "components": scored.components,
                "restricted_until": restricted_until(grade, rated_on),
            }
        )
    return result


class _SystemViewer:
    """Sees every firm's facts: ratings are computed for the whole city, then shown by scope."""

    role = roles.ADMIN
    is_active = True
    id = None


SYSTEM_VIEWER = _SystemViewer()


def compute_month(
    month: str,
    actor=None,
    *,
    recompute: bool = False,
    reason: str | None = None,
    now: datetime | None = None,
) -> tuple[list[FirmRating], bool]:
    """Rate every firm for ``month`` and freeze it; returns (ratings, whether anything was computed now).

    A month already rated is returned as stored unless ``recompute`` (a street supervisor or an
    administrator, with a reason; logged with the scores before and after). The figures are read from
    the read replica when one is configured and has replayed everything the primary holds (else from
    the primary; see :func:`_firm_figures`); the ratings and the audit line are written on the primary,
    in the caller's transaction. Raises :class:`ValidationError` (bad month, month not over, no reason)
    or :class:`PermissionDenied`.
    """
    now = now or utcnow()
    if actor is not None and actor is not SYSTEM_ACTOR and not can_manage(actor):
        raise PermissionDenied(_("Only street supervisors and administrators compute firm ratings."))
    period = _month(month)
    month = period.label
    if period.end > now:
        raise ValidationError(
            _("%(month)s is not over yet: its figures may still change. Rate it after it closes.", month=month),
            field="month",
        )
    existing = list(
        db.session.scalars(select(FirmRating).where(FirmRating.month == month).order_by(FirmRating.firm_id))
    )
    if existing and not recompute:
        return existing, False
    if recompute:
        reason = (reason or "").strip()
        if not reason:
            raise ValidationError(_("Say why the frozen rating is recomputed."), field="reason")
    rows, figures_as_of = _firm_figures(period, now)
    before = {r.firm_id: {"score": r.score, "grade": r.grade} for r in existing}
    if existing:
        db.session.execute(delete(FirmRating).where(FirmRating.month == month))
        db.session.flush()
    rated_on = to_local(now).date()
    adjustments = _adjustments_by_firm(month)
    ratings = []
    for firm in db.session.scalars(select(PropertyFirm).order_by(PropertyFirm.id)):
        scored = score_row(rows.get(firm.id) or indicators.Row(firm.id))
        score = _final(scored.base_score, adjustments.get(firm.id, []))
        grade = grade_for(score)
        rating = FirmRating(
            month=month,
            firm_id=firm.id,
            base_score=scored.base_score,
            score=score,
            grade=grade,
            components=scored.components,
            rated_on=rated_on,
            restricted_until=restricted_until(grade, rated_on),
            computed_at=now,
            computed_by_id=getattr(actor, "id", None),
        )
        db.session.add(rating)
        ratings.append(rating)
    record_audit(
        actor if actor is not SYSTEM_ACTOR else None,
        "rating.recomputed" if recompute and existing else "rating.computed",
        target=f"{_('Firm ratings')} {month}",
        details={
            "month": month,
            "reason": reason if recompute else None,
            "figures": "replica" if figures_as_of else "primary",
            "figures_as_of": figures_as_of.isoformat() if figures_as_of else None,
            "before": {str(k): v for k, v in before.items()},
            "after": {str(r.firm_id): {"score": r.score, "grade": r.grade} for r in ratings},
        },
    )
    db.session.flush()
    return ratings, True


def _firm_figures(period: indicators.Period, now: datetime) -> tuple[dict[Any, indicators.Row], datetime | None]:
    """Every firm's figures of ``period`` and, when they were read from the read replica, the time they
    are as of (also left in ``g.rating_figures_as_of`` for the page and the CLI to say so).

    A frozen rating must not miss any of the month's facts, so the replica is used only once it has
    replayed everything the primary had written when the computation began (``caught_up``): a replica
    that is paused, behind or down means the primary is read, and the log says why.
    """
    from app.core.replica import reading_from_replica

    with reading_from_replica(caught_up=True) as as_of:
        report = indicators.compute(SYSTEM_VIEWER, period, "firm", now=now, with_backlog=False, with_p90=False)
    if has_app_context():
        g.rating_figures_as_of = as_of
    return {row.key: row for row in report.rows}, as_of


def _adjustments_by_firm(month: str) -> dict[int, list[RatingAdjustment]]:
    found: dict[int, list[RatingAdjustment]] = {}
    for adjustment in db.session.scalars(
        select(RatingAdjustment).where(RatingAdjustment.month == month).order_by(RatingAdjustment.id)
    ):
        found.setdefault(adjustment.firm_id, []).append(adjustment)
    return found


def adjust(
    month: str, firm_ref, points, reason: str, actor, *, now: datetime | None = None
) -> tuple[FirmRating, RatingAdjustment]:
    """A supervisor's adjustment of a rated month: points (−20 … +20) and a reason; the score and grade
    follow, the adjustment is shown with its author and logged. Raises :class:`ValidationError`,
    :class:`PermissionDenied` or :class:`Conflict` (the month is not rated yet)."""
    now = now or utcnow()
    if not can_manage(actor):
        raise PermissionDenied(_("Only street supervisors and administrators adjust firm ratings."))
    period = _month(month)
    firm = _firm(firm_ref)
    try:
        value = round(float(points), 1)
    except (TypeError, ValueError):
        raise ValidationError(_("Points are a number between −20 and 20."), field="points") from None
    if value != value or not -MAX_ADJUSTMENT <= value <= MAX_ADJUSTMENT or value == 0:
        raise ValidationError(_("Points are a number between −20 and 20 (not 0)."), field="points")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError(_("Say why the score is adjusted."), field="reason")
    if len(reason) > 500:
        raise ValidationError(_("The reason is longer than %(max)d characters.", max=500), field="reason")
    rating = db.session.scalar(
        select(FirmRating).where(FirmRating.month == period.label, FirmRating.firm_id == firm.id).with_for_update()
    )
    if rating is None:
        raise Conflict(_("%(month)s is not rated yet: compute the month's rating first.", month=period.label))
    if rating.base_score is None:
        raise Conflict(_("%(firm)s had nothing to rate in %(month)s.", firm=firm.name, month=period.label))
    adjustment = RatingAdjustment(
        month=period.label,
        firm_id=firm.id,
        points=value,
        reason=reason,
        created_by_id=actor.id,
        created_by_name=_actor_name(actor),
        created_at=now,
    )
    db.session.add(adjustment)
    db.session.flush()
    before = {"score": rating.score, "grade": rating.grade}
    rating.score = _final(rating.base_score, _adjustments_by_firm(period.label).get(firm.id, []))
    rating.grade = grade_for(rating.score)
    rating.restricted_until = restricted_until(rating.grade, rating.rated_on)
    record_audit(
        actor,
        "rating.adjusted",
        target=firm,
        details={
            "month": period.label,
            "points": value,
            "reason": reason,
            "before": before,
            "after": {"score": rating.score, "grade": rating.grade},
        },
    )
    db.session.flush()
    return rating, adjustment


def _firm(ref) -> PropertyFirm:
    from app.core.params import parse_id

    firm = None
    number = parse_id(ref)
    if number is not None:
        firm = db.session.get(PropertyFirm, number)
    if firm is None and ref not in (None, ""):
        firm = db.session.scalar(select(PropertyFirm).where(PropertyFirm.code == str(ref)))
    if firm is None:
        raise ValidationError(_("No property firm %(ref)s.", ref=ref), field="firm")
    return firm


def ratings_for(user, month: str, *, now: datetime | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The month's ratings of the firms ``user`` may see, best first, and whether they are frozen.

    A month not rated yet is shown as it would be rated now (provisional, nothing stored; from the read
    replica when one is configured). Raises :class:`ValidationError` for a bad month.
    """
    period = _month(month)
    firms = {f.id: f for f in db.session.scalars(visible_firms(user))}
    stored = list(
        db.session.scalars(
            select(FirmRating).where(FirmRating.month == period.label, FirmRating.firm_id.in_(list(firms)))
        )
    )
    adjustments = _adjustments_by_firm(period.label)
    if stored:
        entries = [
            {
                "firm": firms[r.firm_id],
                "base_score": r.base_score,
                "score": r.score,
                "grade": r.grade,
                "components": r.components,
                "restricted_until": r.restricted_until,
                "rated_on": r.rated_on,
                "adjustments": adjustments.get(r.firm_id, []),
            }
            for r in stored
        ]
        frozen = True
    else:
        from app.core.replica import reading_from_replica

        with reading_from_replica():  # figures not frozen: the read replica's, "as of" its replay time
            computed = provisional(period.label, now=now)
        entries = [
            {**entry, "firm": firms[entry["firm"].id], "adjustments": [], "rated_on": None}
            for entry in computed
            if entry["firm"].id in firms
        ]
        frozen = False
    entries.sort(key=lambda e: (e["score"] is None, -(e["score"] or 0), e["firm"].code))
    return entries, frozen


def history(user, firm: PropertyFirm, limit: int = 24) -> list[FirmRating]:
    """A firm's frozen ratings, newest first. Raises :class:`PermissionDenied` outside the user's view."""
    if db.session.scalar(visible_firms(user).where(PropertyFirm.id == firm.id)) is None:
        raise PermissionDenied(_("You may not see this firm's ratings."))
    return list(
        db.session.scalars(
            select(FirmRating).where(FirmRating.firm_id == firm.id).order_by(FirmRating.month.desc()).limit(limit)
        )
    )


def entry_as_dict(entry: dict[str, Any]) -> dict[str, Any]:
    """One firm's rating for the API."""
    firm = entry["firm"]
    return {
        "code": firm.code,
        "name": firm.name,
        "score": entry["score"],
        "base_score": entry["base_score"],
        "grade": entry["grade"],
        "priority": entry["grade"] == "A",
        "restricted": entry["restricted_until"] is not None,
        "restricted_until": entry["restricted_until"].isoformat() if entry["restricted_until"] else None,
        "components": entry["components"],
        "adjustments": [
            {
                "points": a.points,
                "reason": a.reason,
                "by": a.created_by_name,
                "at": a.created_at.isoformat(),
            }
            for a in entry["adjustments"]
        ],
    }


def previous_complete_month(now: datetime | None = None) -> str:
    """The latest reporting month that is over (what the scheduled run rates)."""
    return indicators.previous_month(indicators.current_month(now)).label


def scheduled_rating(now: datetime | None = None) -> bool:
    """The scheduler's monthly run: rate the month that just closed, once. Returns whether it rated."""
    month = previous_complete_month(now)
    _ratings, computed = compute_month(month, SYSTEM_ACTOR, now=now)
    return computed
