"""Staff case pages (list, intake, case page with actions) and the resident pages (sign-off, tracking).

Views parse the request, call one service, commit, and turn a domain error into a message next to
what the user typed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, timedelta
from functools import lru_cache
from urllib.parse import quote

import segno
from flask import Blueprint, abort, flash, g, jsonify, redirect, render_template, request, send_file, session, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required
from pypinyin import Style, lazy_pinyin
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from wtforms.fields.choices import SelectChoice

from app.auth import roles
from app.auth.models import User
from app.auth.permissions import can_see_resident_phone, role_required
from app.cases import attachments as attachment_store
from app.cases import labels as L
from app.cases import queries, services
from app.cases import reports as case_reports
from app.cases.forms import IntakeForm, NoteForm, ReassignForm, SignoffCodeForm, TrackForm
from app.cases.models import Attachment, Case, Category, FollowUp
from app.core import throttle
from app.core.errors import DomainError
from app.core.i18n import is_english
from app.core.params import parse_id
from app.core.timeutil import app_tz, to_local, utcnow
from app.extensions import db
from app.org import lookups
from app.org.models import (
    Building,
    Community,
    Compound,
    FirmContract,
    Grid,
    PartyBranch,
    PropertyFirm,
    ServiceStation,
)
from app.reports.followups import can_review
from app.sla.services import load_calendar, policy_limit, timer_view
from workflows import OPEN_STATES, STATES, TRIGGERS, WORKFLOWS
from workflows.diagram import render_svg

bp = Blueprint("cases", __name__)

INTAKE_ROLES = (roles.CLERK, roles.GRID_WORKER, roles.SUPERVISOR, roles.ADMIN)


def _lang() -> str:
    return "en" if is_english() else "zh"


def _load(ref: str) -> Case:
    try:
        return services.get_visible_case(current_user, ref)
    except DomainError:
        abort(404)


# ------------------------------------------------------------------------------------------- list


@bp.route("/cases")
@login_required
def index():
    """The user's work queue by deadline (the default), or any filtered list / search of their scope."""
    args = request.args
    drill = None
    try:
        filters = queries.CaseFilters.from_args(args)
        if not any(args.get(k) for k in LIST_KEYS):
            filters.mine = True  # a user opens the page on their own open work
        if args.get("figure"):  # the cases behind a number of the dashboard or the bulletin: any state
            from app.reports import drill as figures

            filters.ids, period = figures.case_ids(
                current_user, args["figure"], args.get("period"), args.get("slice"), args.get("value")
            )
            drill = figures.describe(args["figure"], period, args.get("slice"), args.get("value"))
            filters.state = filters.state or "all"
        if args.get("assigned_to") and current_user.role in (roles.SUPERVISOR, roles.ADMIN):
            filters.assigned_to = parse_id(args.get("assigned_to"))
        if filters.state is None:
            filters.state = "all" if filters.q else "open"
        items, next_cursor = queries.list_cases(current_user, filters, args.get("cursor"), limit=25, by_deadline=True)
    except DomainError as error:
        flash(error.message, "danger")
        return redirect(url_for("cases.index"))
    categories = lookups.categories()
    kept = {k: v for k, v in args.items() if k != "cursor" and v}
    if filters.mine:
        kept["mine"] = "1"
    now = utcnow()
    calendar = load_calendar()
    return render_template(
        "cases/index.html",
        items=items,
        rows=_rows(items, now, calendar),
        next_cursor=next_cursor,
        filters=filters,
        categories=categories,
        compounds=_filter_compounds(),
        states=STATES,
        args=kept,
        first_page=not args.get("cursor"),
        counts=my_work_counts(),
        queue_states=queries.queue_states(current_user) or OPEN_STATES,
        channels=L.CHANNEL_LABELS,
        windows=_business_windows(calendar, now),
        more_filters=any(args.get(k) for k in MORE_FILTER_KEYS),
        drill=drill,
    )


#: any of these in the URL means "a list the user asked for" rather than their queue
LIST_KEYS = (
    "q",
    "due",
    "state",
    "category",
    "compound_id",
    "compound",
    "urgency",
    "channel",
    "escalation",
    "overdue",
    "needs_routing",
    "shelved",
    "mine",
    "created_from",
    "created_to",
    "cursor",
    "figure",
    "firm",
    "assigned_to",
)
MORE_FILTER_KEYS = (
    "category",
    "compound_id",
    "urgency",
    "channel",
    "created_from",
    "created_to",
    "needs_routing",
    "shelved",
)


#: the badge colour of each state (as ``_badges.state_badge``)
STATE_TONES = {
    "registered": "secondary",
    "grid_assigned": "warning",
    "grid_handling": "info",
    "branch_review": "primary",
    "firm_dispatched": "warning",
    "firm_processing": "info",
    "on_hold": "secondary",
    "awaiting_signoff": "success",
    "closed": "dark",
}
LEVEL_CLASSES = {1: "queue-warning", 2: "queue-overdue", 3: "queue-overdue"}


@dataclass(slots=True)
class QueueRow:
    """What a queue row shows of a case, worked out once in Python (a template reading 20 attributes of an
    ORM object and calling filters per row took half of a list page's rendering)."""

    level: int
    left: float | None
    href: str
    state_label: str
    tone: str
    level_class: str
    category: str
    place: str
    closed_at: str
    due_at: str
    due_ms: int | None
    warn_ms: int | None
    created_at: str


def _row(case: Case, now, calendar, page: dict) -> QueueRow:
    """A queue row: time level (0 normal, 1 near the deadline, 2+ overdue), time left and the texts
    (``page``: what every row of the page shares, see :func:`_rows`)."""
    level = case.escalation_level or 0
    is_open = case.is_open
    due_at, warn_at = case.due_at, case.warn_at
    running = is_open and case.paused_at is None and due_at is not None
    if running:
        if now >= due_at:
            level = max(level, 2)
        elif warn_at is not None and now >= warn_at:
            level = max(level, 1)
    left = None
    if running:
        if case.step_working:
            left = calendar.business_minutes_between(now, due_at)
        else:
            left = (due_at - now).total_seconds() / 60
    level = level if is_open else 0
    compound, local, state = case.compound, page["local"], case.state
    return QueueRow(
        level=level,
        left=left,
        href=page["href"] + quote(case.ref),
        state_label=page["labels"][state],
        tone=STATE_TONES.get(state, "secondary"),
        level_class=LEVEL_CLASSES.get(level, ""),
        category=case.category.name,
        place=compound.name if compound else (case.address_text or "—"),
        closed_at=local(case.closed_at) if case.closed_at else "",
        due_at=local(due_at) if due_at else "",
        due_ms=int(due_at.timestamp() * 1000) if due_at else None,
        warn_ms=int(warn_at.timestamp() * 1000) if warn_at else None,
        created_at=local(case.created_at),
    )


def _rows(items: list[Case], now, calendar) -> list[QueueRow]:
    """The rows of a list page, with what they share worked out once: the link (one built URL, not a
    ``url_for`` per row), the state labels of the current language and the display zone."""
    if not items:
        return []
    sample = url_for("cases.show", ref="REF")
    tz = app_tz()

    def local(value) -> str:  # as the ``localtime`` filter (to_local), with the zone looked up once
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(tz).strftime("%Y-%m-%d %H:%M")

    page = {
        "href": sample[: -len("REF")],
        "labels": {state: L.state_label(state) for state in {case.state for case in items}},
        "local": local,
    }
    return [_row(case, now, calendar, page) for case in items]


def _business_windows(calendar, now) -> list[list[int]]:
    """Business periods of the next days as [start, end] epoch milliseconds, for the live countdown."""
    today = now.astimezone(calendar.tz).date()
    windows = []
    for offset in range(0, 8):
        day = today + timedelta(days=offset)
        if calendar.is_working_day(day):
            windows.extend(
                [int(start.timestamp() * 1000), int(end.timestamp() * 1000)] for start, end in calendar._windows(day)
            )
    return windows


def _filter_compounds():
    """Compounds the user can filter by: those of their area, as (id, code, name) rows — a city-wide user's
    filter lists thousands, and full objects for each of them made every list page slower."""
    user = current_user
    if user.role == roles.PROPERTY_MANAGER:
        query = (
            select(Compound)
            .join(FirmContract, FirmContract.compound_id == Compound.id)
            .where(FirmContract.firm_id == user.firm_id)
            .distinct()
            .order_by(Compound.code)
        )
    elif user.role == roles.BRANCH_SECRETARY:
        query = (
            select(Compound)
            .join(PartyBranch, PartyBranch.compound_id == Compound.id)
            .where(PartyBranch.id == user.branch_id)
            .order_by(Compound.code)
        )
    else:
        query = _compounds_query()
    return db.session.execute(query.with_only_columns(Compound.id, Compound.code, Compound.name)).all()


# ----------------------------------------------------------------------------------------- intake


def _intake_compounds():
    return db.session.scalars(_compounds_query()).all()


def _compounds_query():
    """The compounds of the current user's area (all of them for a city-wide user), by code."""
    query = select(Compound).order_by(Compound.code)
    user = current_user
    if user.role == roles.CLERK and user.station is not None:
        query = query.where(Compound.community_id == user.station.community_id)
    elif user.role == roles.GRID_WORKER:
        query = query.where(Compound.grid_id == user.grid_id)
    elif user.role == roles.SUPERVISOR and user.community_id:
        query = query.where(Compound.community_id == user.community_id)
    elif user.role == roles.SUPERVISOR and user.street_id:
        query = query.join(Community, Community.id == Compound.community_id).where(
            Community.street_id == user.street_id
        )
    return query


@lru_cache(maxsize=512)
def search_keys(*names: str) -> str:
    """Lower-case keys a category can be found by: the names, their pinyin and pinyin initials
    (``电梯故障`` → ``diantiguzhang dtgz``)."""
    keys = []
    for name in names:
        if not name:
            continue
        keys.append(name.lower())
        if any("\u4e00" <= ch <= "\u9fff" for ch in name):
            keys.append("".join(lazy_pinyin(name)))
            keys.append("".join(lazy_pinyin(name, style=Style.FIRST_LETTER)))
    return " ".join(keys)


def _fill_intake_choices(form: IntakeForm, compounds) -> None:
    categories = db.session.scalars(
        select(Category).where(Category.active.is_(True)).order_by(Category.sort_order)
    ).all()
    form.category.choices = [SelectChoice("", _("Choose…"))] + [
        SelectChoice(
            c.code,
            c.name,
            render_kw={
                "data-search": search_keys(c.name_zh, c.name_en, c.code),
                "data-urgency": str(L.URGENCY_LABELS.get(c.default_urgency, c.default_urgency)),
                "data-urgent": "1" if c.default_urgency == "urgent" else "0",
                "data-workflow": L.workflow_label(c.workflow),
            },
        )
        for c in categories
    ]
    form.compound.choices = [SelectChoice("", _("Choose…"))] + [
        SelectChoice(str(c.id), f"{c.name}（{c.community.name}）") for c in compounds
    ]
    buildings = (
        db.session.scalars(
            select(Building)
            .where(Building.compound_id.in_([c.id for c in compounds]))
            .order_by(Building.compound_id, Building.id)
        ).all()
        if compounds
        else []
    )
    form.building.choices = [SelectChoice("", _("Whole compound / not sure"))] + [
        SelectChoice(str(b.id), b.name) for b in buildings
    ]
    form.building_compound = {str(b.id): str(b.compound_id) for b in buildings}


@bp.route("/cases/new", methods=["GET", "POST"])
@role_required(*INTAKE_ROLES)
def new():
    form = IntakeForm()
    compounds = _intake_compounds()
    _fill_intake_choices(form, compounds)
    if request.method == "GET":
        form.channel.data = "grid" if current_user.role == roles.GRID_WORKER else "window"
    duplicates = []
    status = 200
    if form.validate_on_submit():
        allowed_ids = {str(c.id) for c in compounds}
        if form.compound.data not in allowed_ids:
            form.compound.errors.append(_("Choose a compound in your area."))
            status = 422
        else:
            intake = services.Intake(
                category=form.category.data,
                description=form.description.data,
                channel=form.channel.data,
                compound=int(form.compound.data),
                building=form.building.data or None,
                unit=form.unit.data,
                urgency=form.urgency.data or None,
                resident_name=form.resident_name.data,
                resident_phone=form.resident_phone.data,
            )
            category = db.session.scalar(select(Category).where(Category.code == form.category.data))
            if category is not None and not form.confirm_new.data:
                duplicates = services.possible_duplicates(
                    category.id, int(form.compound.data), parse_id(form.building.data)
                )
            if duplicates:
                flash(
                    _(
                        "Similar open cases exist in this compound. Add the report to one of them, or tick "
                        "“new matter” and register again."
                    ),
                    "warning",
                )
                status = 409
            else:
                photos = [(f.filename, f.read()) for f in request.files.getlist("photos") if f and f.filename]
                try:
                    case = services.register_case(intake, current_user)
                    if photos:
                        services.attach(case, current_user, photos)
                except services.FieldErrors as error:
                    db.session.rollback()
                    for name, message in error.errors.items():
                        getattr(form, name, form.description).errors.append(message)
                    status = 422
                except DomainError as error:  # a file that is not a usable photo: nothing is registered
                    db.session.rollback()
                    form.description.errors.append(error.message)
                    status = error.http_status
                else:
                    db.session.commit()
                    flash(
                        _(
                            "Case %(ref)s registered and sent to %(who)s.",
                            ref=case.ref,
                            who=case.assigned_grid_worker.display_name
                            if case.assigned_grid_worker
                            else _("the supervisor for routing"),
                        ),
                        "success",
                    )
                    return redirect(url_for("cases.show", ref=case.ref, receipt=1))
    elif request.method == "POST":
        status = 422
    return render_template("cases/new.html", form=form, duplicates=duplicates), status


def localtime_text(value) -> str:
    local = to_local(value)
    return local.strftime("%Y-%m-%d %H:%M") if local else ""


def _case_brief(case: Case) -> dict:
    return {
        "ref": case.ref,
        "url": url_for("cases.show", ref=case.ref),
        "state": L.state_label(case.state),
        "open": case.is_open,
        "category": case.category.name,
        "compound_id": case.compound_id,
        "compound": case.compound.name if case.compound else "",
        "building": case.building.name if case.building else "",
        "created": localtime_text(case.created_at),
        "description": (case.description or "")[:80],
    }


@bp.route("/cases/callers")
@role_required(*INTAKE_ROLES)
def caller_history():
    """A caller's earlier cases (JSON) for the intake page: typing a full mobile shows them."""
    phone = (request.args.get("phone") or "")[:20]
    cases = queries.caller_history(current_user, phone)
    latest = cases[0] if cases else None
    allowed = {c.id for c in _intake_compounds()}
    return jsonify(
        {
            "cases": [_case_brief(c) for c in cases],
            "name": latest.resident_name if latest else None,
            "compound_id": latest.compound_id if latest and latest.compound_id in allowed else None,
            "building_id": latest.building_id if latest and latest.compound_id in allowed else None,
            "unit": latest.unit if latest and latest.compound_id in allowed else None,
        }
    )


@bp.route("/cases/duplicates")
@role_required(*INTAKE_ROLES)
def duplicate_hint():
    """Open cases of the same category in the same compound (JSON), shown while the case is typed."""
    category = db.session.scalar(select(Category).where(Category.code == (request.args.get("category") or "")[:32]))
    compound_id = parse_id(request.args.get("compound"))
    if category is None or compound_id is None or compound_id not in {c.id for c in _intake_compounds()}:
        return jsonify({"cases": []})
    found = services.possible_duplicates(category.id, compound_id, parse_id(request.args.get("building")))
    return jsonify({"cases": [_case_brief(c) for c in found if services.can_view(current_user, c)]})


# ------------------------------------------------------------------------------------- case page


def render_case(
    case: Case,
    *,
    errors: dict | None = None,
    values: dict | None = None,
    open_trigger: str | None = None,
    status: int = 200,
    reassign_form: ReassignForm | None = None,
):
    lookups.prime_case(case)  # its category and organisation from the cache, not one query each
    allowed = services.allowed_triggers(current_user, case)
    events = services.events_of(case)
    visited = {e.to_state for e in events if e.to_state} | {"registered"}
    svg = render_svg(WORKFLOWS[case.workflow], _lang(), current=case.state, visited=visited, possible=set(allowed))
    files = db.session.scalars(select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id)).all()
    follow_ups = db.session.scalars(select(FollowUp).where(FollowUp.case_id == case.id).order_by(FollowUp.id)).all()
    can_reassign = current_user.role in services.REASSIGN_ROLES and case.state != "closed"
    if can_reassign and reassign_form is None:
        reassign_form = _reassign_form(case)
    show_phone = can_see_resident_phone(current_user, case)
    # the next likely action first, destructive ones last and set apart
    ordered = sorted(allowed, key=lambda name: TONE_ORDER.get(TRIGGERS[name].tone, 0))
    every_report = case_reports.reports_of(case, active_only=False)
    duplicates = []
    if case.is_open:
        found = services.possible_duplicates(case.category_id, case.compound_id, case.building_id, exclude_id=case.id)
        duplicates = [other for other in found if services.can_view(current_user, other)]
        lookups.prime_rows(duplicates)
    return render_template(
        "cases/show.html",
        case=case,
        allowed=ordered,
        main_actions=[name for name in ordered if TRIGGERS[name].tone != "danger"],
        danger_actions=[name for name in ordered if TRIGGERS[name].tone == "danger"],
        can_print=current_user.role in RECEIPT_ROLES,
        reports=[r for r in every_report if r.unlinked_at is None],
        report_refs={r.id: r.ref for r in every_report},
        report_answers={f.report_id: f for f in follow_ups if f.report_id},
        can_unlink=current_user.role in case_reports.UNLINK_ROLES and case.is_open,
        can_link=current_user.role in case_reports.LINK_ROLES and case.is_open,
        triggers=TRIGGERS,
        events=events,
        svg=svg,
        files=files,
        follow_ups=follow_ups,
        errors=errors or {},
        values=values or {},
        open_trigger=open_trigger,
        note_form=NoteForm(),
        reassign_form=reassign_form if can_reassign else None,
        show_phone=show_phone,
        can_review_follow_ups=can_review(current_user, case),
        L=L,
        lang=_lang(),
        timer=timer_view(case, current_user),
        duplicates=duplicates,
    ), status


TONE_ORDER = {"secondary": 1, "danger": 2}


def _reassign_form(case: Case) -> ReassignForm:
    form = ReassignForm(prefix="reassign")
    form.version.data = str(case.version)
    # the active grid workers with their grids in one statement (a community supervisor: only its own)
    workers = (
        select(User.id, User.display_name, Grid.name)
        .outerjoin(Grid, Grid.id == User.grid_id)
        .where(User.role == roles.GRID_WORKER, User.active.is_(True))
        .order_by(User.username)
    )
    area = current_user
    if area.role == roles.SUPERVISOR and area.community_id:
        workers = workers.where(Grid.community_id == area.community_id)
    form.grid_worker.choices = [SelectChoice("", _("No change"))] + [
        SelectChoice(str(worker_id), f"{name} · {grid or ''}") for worker_id, name, grid in db.session.execute(workers)
    ]
    form.firm.choices = [SelectChoice("", _("No change"))] + [
        SelectChoice(str(f.id), f.name) for f in db.session.scalars(select(PropertyFirm).order_by(PropertyFirm.code))
    ]
    compounds = select(Compound).order_by(Compound.code)
    if area.role == roles.SUPERVISOR and area.community_id:
        compounds = compounds.where(Compound.community_id == area.community_id)
    form.compound.choices = [SelectChoice("", _("No change"))] + [
        SelectChoice(str(c.id), c.name) for c in db.session.scalars(compounds)
    ]
    return form


@bp.route("/cases/<ref>")
@login_required
def show(ref: str):
    case = _load(ref)
    kept = session.pop(KEPT_FORM, None)
    if isinstance(kept, dict) and kept.get("ref") == case.ref:
        reassign_form = None
        if kept.get("kind") == "reassign" and current_user.role in services.REASSIGN_ROLES:
            reassign_form = _reassign_form(case)
            reassign_form.process(MultiDict(kept.get("values") or {}))
            reassign_form.version.data = str(case.version)
            reassign_form.validate()
        return render_case(
            case,
            errors=kept.get("errors") or {},
            values=kept.get("values") or {},
            open_trigger=kept.get("open_trigger"),
            reassign_form=reassign_form,
        )
    return render_case(case)


#: session key of a refused form's messages and input, shown once on the case page (post/redirect/get)
KEPT_FORM = "ksm_case_form"
#: the session lives in a cookie: larger input is shown directly instead of through a redirect
MAX_KEPT_BYTES = 2500


def _back_to_case(
    case: Case,
    message: str,
    *,
    status: int,
    errors=None,
    values=None,
    open_trigger=None,
    kind: str = "action",
    anchor: str = "actions",
    reassign_form=None,
):
    """After a refusal: flash the message and redirect to the case page with the input kept (PRG).

    A refresh of the page the user lands on re-submits nothing. Input too large for the session cookie, and
    a refusal of the user's role (403), are rendered directly with ``status``; nothing typed is lost.
    """
    flash(message, "danger")
    kept = {"ref": case.ref, "errors": errors or {}, "values": values or {}, "open_trigger": open_trigger, "kind": kind}
    # a refusal of the user's role keeps its 403 (no redirect that would read as success to a client)
    if status == 403 or len(json.dumps(kept, ensure_ascii=False).encode()) > MAX_KEPT_BYTES:
        return render_case(
            case,
            errors=kept["errors"],
            values=kept["values"],
            open_trigger=open_trigger,
            status=status,
            reassign_form=reassign_form,
        )
    session[KEPT_FORM] = kept
    return redirect(url_for("cases.show", ref=case.ref, _anchor=anchor), code=303)


@bp.route("/cases/<ref>/actions/<trigger>", methods=["POST"])
@login_required
def act(ref: str, trigger: str):
    case = _load(ref)
    values = request.form.to_dict()
    photos = [(f.filename, f.read()) for f in request.files.getlist("photos") if f and f.filename]
    version = values.pop("version", None)
    values.pop("csrf_token", None)
    try:
        services.fire(
            case,
            trigger,
            current_user,
            inputs=values,
            expected_version=parse_id(version),
            photos=photos,
        )
    except DomainError as error:
        db.session.rollback()
        case = _load(ref)
        fields = error.details.get("fields") if error.details else None
        return _back_to_case(
            case,
            error.message,
            status=error.http_status,
            errors=fields or {"_": error.message},
            values=values,
            open_trigger=trigger if trigger in TRIGGERS else None,
        )
    db.session.commit()
    flash(
        _(
            "%(action)s: done. The case is now “%(state)s”.",
            action=L.trigger_label(trigger),
            state=L.state_label(case.state),
        ),
        "success",
    )
    return redirect(url_for("cases.show", ref=case.ref))


@bp.route("/cases/<ref>/notes", methods=["POST"])
@login_required
def add_note(ref: str):
    case = _load(ref)
    form = NoteForm()
    text = form.note.data if form.validate_on_submit() else request.form.get("note", "")
    try:
        services.add_note(
            case,
            current_user,
            text,
            contact={"name": request.form.get("contact_name", ""), "phone": request.form.get("contact_phone", "")},
        )
    except DomainError as error:
        db.session.rollback()
        return _back_to_case(
            _load(ref), error.message, status=error.http_status, values={"note": text}, kind="note", anchor="notes"
        )
    db.session.commit()
    flash(_("Note added."), "success")
    return redirect(url_for("cases.show", ref=case.ref, _anchor="history"))


@bp.route("/cases/<ref>/attachments", methods=["POST"])
@login_required
def upload(ref: str):
    case = _load(ref)
    files = [(f.filename, f.read()) for f in request.files.getlist("photos") if f and f.filename]
    try:
        services.attach(case, current_user, files, note=request.form.get("note"))
    except DomainError as error:
        db.session.rollback()
        return _back_to_case(_load(ref), error.message, status=error.http_status, kind="upload", anchor="files")
    db.session.commit()
    flash(_("%(count)d file(s) attached.", count=len(files)), "success")
    return redirect(url_for("cases.show", ref=case.ref, _anchor="files"))


@bp.route("/cases/<ref>/attachments/<int(min=1, max=2147483647):attachment_id>")
@login_required
def attachment(ref: str, attachment_id: int):
    case = _load(ref)
    row = db.session.get(Attachment, attachment_id)
    if row is None or row.case_id != case.id:
        abort(404)
    try:
        path = attachment_store.path_of(row)
    except ValueError:
        abort(404)
    if not path.exists():
        abort(404)
    return send_file(
        path, mimetype=row.content_type, download_name=row.filename, as_attachment=not row.is_image, max_age=3600
    )


@bp.route("/cases/<ref>/reassign", methods=["POST"])
@role_required(*services.REASSIGN_ROLES)
def reassign(ref: str):
    case = _load(ref)
    form = _reassign_form(case)
    form.process(request.form)
    kept_values = {k: v for k, v in request.form.items() if k.startswith("reassign-") and k != "reassign-csrf_token"}
    if not form.validate():
        return _back_to_case(
            case,
            _("Say why the case is reassigned."),
            status=422,
            values=kept_values,
            kind="reassign",
            anchor="reassign",
            reassign_form=form,
        )
    try:
        services.reassign(
            case,
            current_user,
            grid_worker=form.grid_worker.data or None,
            firm=form.firm.data or None,
            compound=form.compound.data or None,
            note=form.note.data,
            expected_version=parse_id(form.version.data),
        )
    except DomainError as error:
        db.session.rollback()
        return _back_to_case(
            _load(ref),
            error.message,
            status=error.http_status,
            values=kept_values,
            kind="reassign",
            anchor="reassign",
            reassign_form=form,
        )
    db.session.commit()
    flash(_("Case %(ref)s reassigned.", ref=case.ref), "success")
    return redirect(url_for("cases.show", ref=case.ref))


#: the receipt carries the resident's sign-off link: only those who may record a sign-off print it
RECEIPT_ROLES = (roles.CLERK, roles.GRID_WORKER, roles.ADMIN)


PAPERS = ("80mm", "a5")


def qr_svg(data: str, scale: int = 3) -> str:
    """A QR code as inline SVG, made on the server (segno, no network)."""
    return segno.make(data, error="m").svg_inline(scale=scale, dark="#000", light="#fff", omitsize=True)


@bp.route("/cases/<ref>/receipt")
@role_required(*RECEIPT_ROLES)
def receipt(ref: str):
    """The printable receipt: reference, place, promised times, station, QR codes and the short sign-off code."""
    return _render_receipt(_load(ref))


@bp.route("/cases/<ref>/reports/<report_ref>/receipt")
@role_required(*RECEIPT_ROLES)
def report_receipt(ref: str, report_ref: str):
    """The receipt of a caller's report linked to the case: their own reference and sign-off code."""
    case = _load(ref)
    try:
        report = case_reports.get_report(case, report_ref)
    except DomainError:
        abort(404)
    return _render_receipt(case, report)


def _render_receipt(case: Case, report=None):
    own = report or case
    sign_url = url_for("cases.resident_signoff", token=own.signoff_token, _external=True)
    track_url = url_for("cases.track", ref=own.ref, _external=True)
    code_url = url_for("cases.signoff_code", _external=True)
    paper = request.args.get("paper") if request.args.get("paper") in PAPERS else PAPERS[0]
    limit = policy_limit("grid_assigned", case.urgency)
    first_response = load_calendar().deadline(case.created_at, limit) if limit is not None else None
    station = own.station or (
        db.session.scalar(
            select(ServiceStation).where(ServiceStation.community_id == case.community_id).order_by(ServiceStation.id)
        )
        if case.community_id
        else None
    )
    return render_template(
        "cases/receipt.html",
        case=case,
        report=report,
        own=own,
        sign_url=sign_url,
        track_url=track_url,
        code_url=code_url,
        code=services.format_signoff_code(own.signoff_token),
        track_qr=qr_svg(track_url),
        sign_qr=qr_svg(sign_url),
        first_response=first_response,
        station=station,
        paper=paper,
        L=L,
    )


@bp.route("/cases/<ref>/reports", methods=["POST"])
@role_required(*case_reports.LINK_ROLES)
def link_report(ref: str):
    """Link a second caller's report to this open case (from the intake page's duplicate hint)."""
    case = _load(ref)
    form = request.form
    try:
        report = case_reports.link_report(
            case,
            current_user,
            resident_name=form.get("resident_name", ""),
            resident_phone=form.get("resident_phone", ""),
            description=form.get("description", ""),
            channel=form.get("channel", "window"),
            unit=form.get("unit"),
        )
    except DomainError as error:
        db.session.rollback()
        return _back_to_case(case, error.message, status=error.http_status, kind="link", anchor="callers")
    db.session.commit()
    flash(_("The caller's report %(report)s is linked to case %(ref)s.", report=report.ref, ref=case.ref), "success")
    return redirect(url_for("cases.show", ref=case.ref, report=report.ref, _anchor="callers"))


@bp.route("/cases/<ref>/reports/<report_ref>/unlink", methods=["POST"])
@role_required(*case_reports.UNLINK_ROLES)
def unlink_report(ref: str, report_ref: str):
    """A supervisor undoes a link: the report becomes a case of its own."""
    case = _load(ref)
    try:
        report = case_reports.get_report(case, report_ref)
        new_case = case_reports.unlink_report(report, current_user, request.form.get("note", ""))
    except DomainError as error:
        db.session.rollback()
        return _back_to_case(
            _load(ref),
            error.message,
            status=error.http_status,
            kind="unlink",
            anchor="callers",
            values={"unlink:" + report_ref: request.form.get("note", "")},
        )
    db.session.commit()
    flash(_("Link undone: %(ref)s is now a case of its own.", ref=new_case.ref), "success")
    return redirect(url_for("cases.show", ref=new_case.ref))


@bp.route("/cases/<ref>/diagram.svg")
@login_required
def diagram(ref: str):
    case = _load(ref)
    svg = render_svg(
        WORKFLOWS[case.workflow],
        _lang(),
        current=case.state,
        possible=set(services.allowed_triggers(current_user, case)),
    )
    return svg, 200, {"Content-Type": "image/svg+xml; charset=utf-8"}


# ------------------------------------------------------------------------------------ residents


@bp.route("/s", methods=["GET", "POST"])
def signoff_code():
    """Residents type the short code printed on their receipt to reach their sign-off page."""
    form = SignoffCodeForm()
    status = 200
    if form.validate_on_submit():
        # guessing codes is throttled per client with backoff, like the link itself and /track
        wait = throttle.check(throttle.SIGNOFF, request.remote_addr)
        if wait:
            form.code.errors.append(throttle.wait_message(wait))
            return render_template("cases/resident_code.html", form=form), 429, {"Retry-After": str(wait)}
        try:
            case = services.case_for_signoff_token(form.code.data)
        except DomainError as error:
            report = case_reports.find_report_by_token(form.code.data)
            if report is not None:
                return redirect(url_for("cases.resident_signoff", token=report.signoff_token), code=303)
            throttle.failed(throttle.SIGNOFF, request.remote_addr)
            db.session.commit()
            form.code.errors.append(error.message)
            status = 404
        else:
            return redirect(url_for("cases.resident_signoff", token=case.signoff_token), code=303)
    elif request.method == "POST":
        status = 422
    return render_template("cases/resident_code.html", form=form), status


def _completion(case: Case, events):
    """The last report of work done (firm's completion or on-site resolution) and its photos."""
    event = next((e for e in reversed(events) if e.trigger in ("firm_complete", "resolve_on_site")), None)
    photos = (
        db.session.scalars(
            select(Attachment)
            .where(Attachment.case_id == case.id, Attachment.event_id == event.id)
            .order_by(Attachment.id)
        ).all()
        if event is not None
        else []
    )
    return event, [p for p in photos if p.is_image]


@bp.route("/s/<token>", methods=["GET", "POST"])
def resident_signoff(token: str):
    """The resident's sign-off page, opened from the link, the QR code or the typed code (no account)."""
    wait = throttle.check(throttle.SIGNOFF, request.remote_addr)
    if wait:  # this client guessed many codes: throttled like /track
        from app.main.views import render_error

        page, status = render_error(429, throttle.wait_message(wait))
        return page, status, {"Retry-After": str(wait)}
    report = None
    try:
        case = services.case_for_signoff_token(token)
    except DomainError:
        report = case_reports.find_report_by_token(token)
        if report is None:
            throttle.failed(throttle.SIGNOFF, request.remote_addr)  # a code is its own target: count the client
            db.session.commit()
            return render_template("cases/resident_invalid.html"), 404
        case = report.case
    else:
        report = case_reports.linked_report_of(case)  # closed as a duplicate: the caller follows the original
        if report is not None:
            case = report.case
    errors, values, status = {}, {}, 200
    if request.method == "POST":
        values = {k: v for k, v in request.form.items() if k in ("contacted", "resolved", "satisfaction", "comment")}
        try:
            if report is not None:
                case_reports.report_signoff(report, values)
            else:
                services.resident_signoff(case.signoff_token, values)
        except DomainError as error:
            db.session.rollback()
            errors = (error.details or {}).get("fields") or {"_": error.message}
            status = error.http_status
            if report is not None:
                report = case_reports.find_report_by_token(token)
                case = report.case
            else:
                case = services.case_for_signoff_token(token)
        else:
            db.session.commit()
            return render_template("cases/resident_thanks.html", case=case, report=report, L=L)
    events = services.events_of(case)
    completion, photos = _completion(case, events)
    return render_template(
        "cases/resident_signoff.html",
        report=report,
        can_answer=case_reports.can_sign_off(report) if report is not None else case.state == "awaiting_signoff",
        answered=report is not None and case_reports.report_follow_up(report) is not None,
        case=case,
        errors=errors,
        values=values,
        signoff=TRIGGERS["signoff"],
        completion=completion,
        photos=photos,
        token=token,
        L=L,
        lang=_lang(),
    ), status


@bp.route("/s/<token>/photos/<int(min=1, max=2147483647):attachment_id>")
def resident_photo(token: str, attachment_id: int):
    """A photo of the completed work, shown to the resident on the sign-off page."""
    try:
        case = services.case_for_signoff_token(token)
    except DomainError:
        report = case_reports.find_report_by_token(token)
        if report is None:
            abort(404)
        case = report.case
    else:
        report = case_reports.linked_report_of(case)
        if report is not None:
            case = report.case
    _event, photos = _completion(case, services.events_of(case))
    row = next((p for p in photos if p.id == attachment_id), None)
    if row is None:
        abort(404)
    try:
        path = attachment_store.path_of(row)
    except ValueError:
        abort(404)
    if not path.exists():
        abort(404)
    return send_file(path, mimetype=row.content_type, max_age=3600)


def normalize_ref(text: str) -> str:
    """A reference typed with or without the prefix (``20261125-0001``, ``ksm20261125 0001``)."""
    compact = "".join(ch for ch in (text or "").upper() if ch.isalnum())
    if compact.startswith(services.REF_PREFIX):
        compact = compact[len(services.REF_PREFIX) :]
    if len(compact) == 12 and compact.isdigit():
        return f"{services.REF_PREFIX}-{compact[:8]}-{compact[8:]}"
    return (text or "").strip().upper()[:24]


@bp.route("/track", methods=["GET", "POST"])
def track():
    """Residents look up their case with the reference number and the last 4 digits of their mobile."""
    form = TrackForm()
    if request.method == "GET" and request.args.get("ref"):
        form.ref.data = request.args.get("ref", "")[:24]
    case, report, status = None, None, 200
    if form.validate_on_submit():
        ref = normalize_ref(form.ref.data)
        # per client and per (client, reference) with backoff — never a lock others can set on a case
        client = request.remote_addr
        wait = throttle.check(throttle.TRACK, client, ref)
        if wait:
            form.ref.errors.append(throttle.wait_message(wait))
            return (
                render_template("cases/track.html", form=form, case=None, timeline=None),
                429,
                {"Retry-After": str(wait)},
            )
        try:
            case = services.case_for_resident(ref, form.last4.data)
        except DomainError as error:
            report = case_reports.find_report_for_resident(ref, form.last4.data)
            if report is not None:
                case = report.case
                throttle.succeeded(throttle.TRACK, client, ref)
                db.session.commit()
            else:
                throttle.failed(throttle.TRACK, client, ref)
                db.session.commit()
                form.ref.errors.append(error.message)
                status = 404
        else:
            report = case_reports.linked_report_of(case)  # closed as a duplicate: show the original's handling
            if report is not None:
                case = report.case
            throttle.succeeded(throttle.TRACK, client, ref)
            db.session.commit()
    elif request.method == "POST":
        status = 422
    timeline = resident_timeline(case, report) if case is not None else None
    return render_template("cases/track.html", form=form, case=case, report=report, timeline=timeline), status


def resident_timeline(case: Case, report=None) -> dict:
    """The resident's view of a case: the steps, who handles the current one (role and organisation,
    never a person), by when, and the returns explained in plain words."""
    events = [e for e in services.events_of(case) if e.kind in ("created", "transition")]
    state = case.state
    steps = [("received", _("Received"), ("registered",))]
    steps.append(("grid", _("With the grid worker"), ("grid_assigned", "grid_handling")))
    if case.workflow == "predeliberation":
        steps.append(("branch", _("With the party branch"), ("branch_review",)))
    steps.append(("firm", _("With the property firm"), ("firm_dispatched", "firm_processing", "on_hold")))
    steps.append(("signoff", _("Awaiting your confirmation"), ("awaiting_signoff",)))
    steps.append(("closed", _("Closed"), ("closed",)))
    current = next(i for i, (_key, _label, states) in enumerate(steps) if state in states or i == len(steps) - 1)
    entered: dict[str, object] = {}
    for e in events:
        for key, _label, states in steps:
            if (e.kind == "created" and key == "received") or (e.to_state in states):
                entered[key] = e.created_at
    who = {
        "grid": (_("Grid worker"), case.grid.name if case.grid else ""),
        "branch": (_("Party branch"), case.branch.name if case.branch else ""),
        "firm": (_("Property firm"), case.firm.name if case.firm else ""),
        "signoff": (_("You"), ""),
    }
    rows = []
    for i, (key, label, _states) in enumerate(steps):
        skipped = key == "firm" and case.resolved_on_site and i < current
        skipped = skipped or (key == "firm" and i < current and case.firm_dispatched_at is None)
        skipped = skipped or (key in ("branch", "signoff") and i < current and key not in entered)
        rows.append(
            {
                "key": key,
                "label": label,
                "status": "current" if i == current and state != "closed" else ("done" if i <= current else "todo"),
                "skipped": skipped,
                "when": entered.get(key),
                "who": who.get(key) if i == current and state != "closed" else None,
                "due": case.due_at if i == current and state != "closed" and not case.paused_at else None,
            }
        )
    returns = []
    for e in events:
        payload = e.payload or {}
        if e.trigger == "firm_return":
            reason = L.choice_label("firm_return", "reason", payload.get("reason")) if payload.get("reason") else ""
            returns.append(
                (e.created_at, _("The property firm passed it back to the grid worker: %(reason)s.", reason=reason))
            )
        elif e.trigger == "signoff" and e.to_state != "closed":
            returns.append(
                (
                    e.created_at,
                    _("The resident said it was not resolved or was not satisfied, so it is being handled again."),
                )
            )
        elif e.trigger == "reopen":
            returns.append((e.created_at, _("A supervisor reopened the case to handle it again.")))
        elif e.trigger == "hold":
            reason = L.choice_label("hold", "reason", payload.get("reason")) if payload.get("reason") else ""
            returns.append((e.created_at, _("Paused (the clock stops): %(reason)s.", reason=reason)))
        elif e.trigger == "close_invalid":
            returns.append(
                (e.created_at, _("Closed without handling: %(why)s.", why=L.resolution_label(case.resolution)))
            )
    if report is not None:
        confirm_token = report.signoff_token if case_reports.can_sign_off(report) else None
    else:
        confirm_token = case.signoff_token if case.state == "awaiting_signoff" else None
    return {"steps": rows, "returns": returns, "confirm": confirm_token}


def my_work_counts() -> queries.QueueCounts:
    """The current user's open work for the navigation (computed once per request)."""
    if "ksm_work_counts" not in g:
        g.ksm_work_counts = queries.queue_counts(current_user)
    return g.ksm_work_counts


@bp.app_context_processor
def _case_template_helpers():
    return {"L": L, "STATES": STATES, "STATE_TONES": STATE_TONES, "my_work_counts": my_work_counts}
