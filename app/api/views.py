"""REST API ``/api/v1`` for the 12345 hotline platform and other integrations.

Each view authenticates the bearer token, checks the shape of the input, calls one service with the
token's user as the actor, and commits once; any error rolls back and answers a JSON error with a
machine-readable code (see :mod:`app.api.errors`). Everything is scoped exactly as in the web
interface: cases are looked up through :func:`app.cases.services.get_visible_case` and listed through
:func:`app.cases.queries.list_cases`.
"""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, current_app, render_template, request, url_for
from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.api import idempotency
from app.api import serializers as S
from app.api.auth import bearer_user
from app.api.errors import ApiError, domain_error_response, json_response
from app.api.inputs import (
    MAX_ID,
    check_query_strings,
    invalid,
    json_body,
    optional_number,
    optional_reference,
    optional_text,
    query_id,
    query_int,
    reject_unknown,
    valid_ref,
)
from app.api.openapi import API_CHANNELS, CREATE_FIELDS, build_spec, reference_view
from app.auth import roles
from app.cases import queries, services
from app.cases.models import Attachment, Case, Category
from app.core.errors import DomainError, NotFound, PermissionDenied, ValidationError
from app.core.i18n import force_locale
from app.extensions import db
from app.org import lookups
from app.org.models import Community, Compound, FirmContract, PropertyFirm, Street
from app.reports.rates import parse_period, three_rates
from workflows import definitions as d

bp = Blueprint("api", __name__, url_prefix="/api/v1")

#: who may register cases (as in the web intake form)
INTAKE_ROLES = (roles.CLERK, roles.GRID_WORKER, roles.SUPERVISOR, roles.ADMIN)
DEFAULT_PAGE = 25
OLDEST_YEAR, NEWEST_YEAR = 1900, 9998


def _header_locale() -> str | None:
    """The language asked for with ``Accept-Language`` (en or zh), or None when the header is absent."""
    if not request.headers.get("Accept-Language"):
        return None
    best = request.accept_languages.best_match(["zh-CN", "zh", "zh-Hans", "en", "en-US", "en-GB"])
    if best is None:
        return None
    return "en" if best.startswith("en") else "zh_Hans_CN"


def api_view(rule: str, methods: tuple[str, ...] = ("GET",)):
    """Register a JSON endpoint: authenticate the bearer token, run the view with the user, commit once;
    roll back and answer JSON on any :class:`ApiError` or :class:`DomainError`."""

    def decorator(view):
        @wraps(view)
        def wrapped(**kwargs):
            default = current_app.config["BABEL_DEFAULT_LOCALE"]
            asked = _header_locale()
            with force_locale(asked or default):
                try:
                    check_query_strings()
                    user = bearer_user()
                except ApiError as error:
                    db.session.rollback()
                    return error.response()
            chosen = user.locale if user.locale in current_app.config["LANGUAGES"] else None
            with force_locale(asked or chosen or default):
                try:
                    response = view(user, **kwargs)
                except ApiError as error:
                    db.session.rollback()
                    return error.response()
                except DomainError as error:
                    db.session.rollback()
                    return domain_error_response(error)
                db.session.commit()
                return response

        bp.add_url_rule(rule, view.__name__, wrapped, methods=list(methods))
        return wrapped

    return decorator


def _load(user, ref: str) -> Case:
    """Raises :class:`NotFound` for a case that does not exist or lies outside the user's area."""
    if not valid_ref(ref):
        raise NotFound(_("No case %(ref)s in your area.", ref=ref[:40]))
    return services.get_visible_case(user, ref)


def _detail(user, case: Case) -> dict:
    files = db.session.scalars(select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id)).all()
    return S.case_detail(case, user, allowed=services.allowed_triggers(user, case), attachments=list(files))


def _case_url(ref: str) -> str:
    return url_for("api.get_case", ref=ref)


# ------------------------------------------------------------------------------------------ meta


@bp.route("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document (public)."""
    return json_response(build_spec())


@bp.route("/docs")
def docs():
    """A readable reference page rendered from the OpenAPI document (public, no external assets)."""
    return render_template("api/reference.html", ref=reference_view(build_spec()), spec=build_spec())


@api_view("/me")
def me(user):
    obj = user.scope_object
    scope = {"kind": user.scope_kind, "id": obj.id, "name": obj.name} if obj is not None else None
    return json_response(
        {
            "id": user.id,
            "username": user.username,
            "display_name": user.display_name,
            "role": user.role,
            "role_label": user.role_label,
            "scope": scope,
        }
    )


# ----------------------------------------------------------------------------------------- cases


def _check_cursor(cursor: str) -> None:
    """Raise :class:`ValidationError` for a cursor this API did not hand out."""
    try:
        created, case_id = queries.decode_cursor(cursor)
        usable = created.tzinfo is not None and OLDEST_YEAR <= created.year <= NEWEST_YEAR and 0 <= case_id <= MAX_ID
    except (OverflowError, TypeError, ValueError):
        usable = False
    if not usable:
        raise ValidationError(_("This page link is not valid; start again from the first page."), field="cursor")


@api_view("/cases")
def list_cases(user):
    args = request.args
    query_id(args, "compound_id")
    query_id(args, "assigned_to")
    limit = query_int(args, "limit", DEFAULT_PAGE, 1, queries.MAX_PAGE)
    filters = queries.CaseFilters.from_args(args)
    for name in ("created_from", "created_to"):
        value = getattr(filters, name)
        if value is not None and not OLDEST_YEAR <= value.year <= NEWEST_YEAR:
            raise invalid(name, _("%(field)s is out of range.", field=name))
    if (args.get("assigned_to") or "").strip():
        filters.assigned_to = int(args["assigned_to"])
    cursor = (args.get("cursor") or "").strip() or None
    if cursor:
        _check_cursor(cursor)
    rows, next_cursor = queries.list_cases(user, filters, cursor, limit)
    return json_response({"items": [S.case_summary(case) for case in rows], "next_cursor": next_cursor})


def _intake(body: dict) -> services.Intake:
    """Build an intake from a checked JSON body. Raises :class:`ApiError` 422 for wrong types."""
    reject_unknown(body, CREATE_FIELDS)
    channel = optional_text(body, "channel", 16) or "api"
    if channel not in API_CHANNELS:
        raise invalid("channel", _("Unknown channel; use one of %(channels)s.", channels=", ".join(API_CHANNELS)))
    external_ref = optional_text(body, "external_ref", 64)
    return services.Intake(
        category=optional_reference(body, "category", 32),
        description=optional_text(body, "description", services.MAX_DESCRIPTION),
        channel=channel,
        compound=optional_reference(body, "compound"),
        building=optional_reference(body, "building"),
        unit=optional_text(body, "unit", 50),
        urgency=optional_text(body, "urgency", 16),
        resident_name=optional_text(body, "resident_name", 50),
        resident_phone=optional_text(body, "resident_phone", 20),
        address_text=optional_text(body, "address_text", 200),
        latitude=optional_number(body, "latitude"),
        longitude=optional_number(body, "longitude"),
        extra={"external_ref": external_ref} if external_ref else {},
    )


@api_view("/cases", methods=("POST",))
def create_case(user):
    if user.role not in INTAKE_ROLES:
        raise PermissionDenied(_("Your role does not register cases; ask a service-desk clerk or grid worker."))
    body = json_body()
    intake = _intake(body)
    key = idempotency.read_key(request.headers.get(idempotency.HEADER))
    record = None
    if key is not None:
        record, is_new = idempotency.claim(user.id, key, idempotency.fingerprint("POST", "/cases", body))
        if not is_new:
            return idempotency.replay(record, {"Location": _case_url(record.response_body["ref"])})
    case = services.register_case(intake, user)
    # the response is built from what the request holds: organisation rows from the cache, no attachments
    lookups.prime_case(case)
    if not services.can_view(user, case):
        # the same rule as the intake form: only compounds in one's own area
        raise ValidationError(_("Choose a compound in your area."), field="compound")
    detail = S.case_detail(case, user, allowed=services.allowed_triggers(user, case), attachments=[])
    result = {**detail, "possible_duplicates": list(case.possible_duplicates)}
    if record is not None:
        idempotency.complete(record, 201, result, case.id)
    return json_response(result, 201, {"Location": _case_url(case.ref)})


@api_view("/cases/<ref>")
def get_case(user, ref: str):
    return json_response(_detail(user, _load(user, ref)))


@api_view("/cases/<ref>/events")
def list_events(user, ref: str):
    case = _load(user, ref)
    return json_response({"items": [S.event_dict(event, user) for event in services.events_of(case)]})


def _transition_inputs(body: dict) -> tuple[str, int | None, dict]:
    """Split a transition body into trigger, expected version and inputs; check their types.

    Raises :class:`ApiError` 422 for a missing trigger, a bad version, an unknown field or an input
    of the wrong type. An unknown trigger is left to the workflow engine, which names the allowed ones.
    """
    trigger = body.get("trigger")
    if not isinstance(trigger, str) or not trigger.strip():
        raise invalid("trigger", _("Name the trigger to fire, e.g. grid_accept."))
    trigger = trigger.strip()
    version = body.get("version")
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_ID
    ):
        raise invalid("version", _("version is the case's version number, a positive integer."))
    inputs = {name: value for name, value in body.items() if name not in ("trigger", "version")}
    spec = d.TRIGGERS.get(trigger)
    if spec is not None:
        reject_unknown(body, ["trigger", "version", *(i.name for i in spec.inputs)])
        for field in spec.inputs:
            value = inputs.get(field.name)
            if value is None:
                continue
            if field.kind == "bool" and not isinstance(value, bool):
                raise invalid(field.name, _("%(field)s must be true or false.", field=field.name))
            if field.kind != "bool" and not isinstance(value, str):
                raise invalid(field.name, _("%(field)s must be a string.", field=field.name))
    return trigger, version, inputs


@api_view("/cases/<ref>/transitions", methods=("POST",))
def fire_transition(user, ref: str):
    case = _load(user, ref)
    body = json_body()
    trigger, version, inputs = _transition_inputs(body)
    try:
        event = services.fire(case, trigger, user, inputs=inputs, expected_version=version)
    except DomainError as error:
        db.session.rollback()
        case = _load(user, ref)
        return domain_error_response(
            error,
            {"allowed": services.allowed_triggers(user, case), "state": case.state, "version": case.version},
        )
    return json_response({"case": _detail(user, case), "event": S.event_dict(event, user)})


@api_view("/cases/<ref>/notes", methods=("POST",))
def add_note(user, ref: str):
    case = _load(user, ref)
    body = json_body()
    reject_unknown(body, ["note"])
    event = services.add_note(case, user, optional_text(body, "note", services.MAX_NOTE) or "")
    return json_response({"event": S.event_dict(event, user)}, 201)


@api_view("/cases/<ref>/phone-reveals", methods=("POST",))
def reveal_phone(user, ref: str):
    """A property firm's user gives a reason and gets the resident's full phone (audited, on the case)."""
    from app.privacy import services as privacy

    case = _load(user, ref)
    body = json_body()
    reject_unknown(body, ["reason"])
    phone = privacy.reveal_phone(user, case, optional_text(body, "reason", 200) or "")
    return json_response({"phone": phone}, 201)


def _uploaded_files() -> list[tuple[str, bytes]]:
    files = []
    for part in [*request.files.getlist("file"), *request.files.getlist("photos")]:
        name = (part.filename or "upload").replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
        files.append((name, part.read()))
    return files


@api_view("/cases/<ref>/attachments", methods=("POST",))
def upload_attachment(user, ref: str):
    case = _load(user, ref)
    files = _uploaded_files()
    note = request.form.get("note")
    if note is not None and ("\x00" in note or len(note) > services.MAX_NOTE):
        raise invalid("note", _("The note is longer than %(max)d characters.", max=services.MAX_NOTE))
    event = services.attach(case, user, files, note=note)
    stored = db.session.scalars(select(Attachment).where(Attachment.event_id == event.id).order_by(Attachment.id))
    return json_response(
        {"event": S.event_dict(event, user), "attachments": [S.attachment_dict(a) for a in stored]}, 201
    )


# -------------------------------------------------------------------------------- reference data


@api_view("/categories")
def list_categories(user):
    categories = db.session.scalars(select(Category).order_by(Category.sort_order, Category.id))
    return json_response({"items": [S.category_dict(c) for c in categories]})


def _street_ids(user) -> list[int] | None:
    """The streets of the user's scope (None: all, for administrators)."""
    if user.role == roles.ADMIN:
        return None
    kind, obj = user.scope_kind, user.scope_object
    if obj is None:
        return []
    if kind == roles.STREET:
        return [obj.id]
    if kind == roles.COMMUNITY:
        return [obj.street_id]
    if kind in (roles.STATION, roles.GRID):
        return [obj.community.street_id]
    if kind == roles.BRANCH:
        return [obj.compound.community.street_id]
    if kind == roles.FIRM:
        return list(
            db.session.scalars(
                select(Community.street_id)
                .join(Compound, Compound.community_id == Community.id)
                .join(FirmContract, FirmContract.compound_id == Compound.id)
                .where(FirmContract.firm_id == obj.id)
                .distinct()
            )
        )
    return []


@api_view("/organisation")
def organisation(user):
    query = (
        select(Street)
        .order_by(Street.code)
        .options(
            selectinload(Street.communities).selectinload(Community.grids),
            selectinload(Street.communities).selectinload(Community.stations),
            selectinload(Street.communities).selectinload(Community.compounds).selectinload(Compound.buildings),
        )
    )
    ids = _street_ids(user)
    if ids is not None:
        query = query.where(Street.id.in_(ids))

    def named(obj):
        return {"id": obj.id, "code": obj.code, "name": obj.name}

    streets = [
        {
            **named(street),
            "communities": [
                {
                    **named(community),
                    "grids": [named(g) for g in community.grids],
                    "compounds": [
                        {
                            **named(compound),
                            "address": compound.address,
                            "grid_id": compound.grid_id,
                            "buildings": [{"id": b.id, "name": b.name} for b in compound.buildings],
                        }
                        for compound in community.compounds
                    ],
                    "stations": [named(s) for s in sorted(community.stations, key=lambda s: s.code)],
                }
                for community in street.communities
            ],
        }
        for street in db.session.scalars(query)
    ]
    firms = [named(f) for f in db.session.scalars(select(PropertyFirm).order_by(PropertyFirm.code))]
    return json_response({"streets": streets, "firms": firms})


# ---------------------------------------------------------------------------------------- reports


@api_view("/rates")
def rates(user):
    period = parse_period(request.args.get("period"))
    report = three_rates(user, period, (request.args.get("group_by") or "community").strip())
    return json_response(
        {
            "period": {"label": period.label, "start": S.instant(period.start), "end": S.instant(period.end)},
            "group_by": report.group_by,
            "weights": report.weights,
            "rows": [row.as_dict(report.weights) for row in report.rows],
            "total": report.total.as_dict(report.weights),
        }
    )


@api_view("/indicators")
def indicators_view(user):
    """Every figure of a period per slice (DESIGN §5), over what the token's owner may see."""
    from app.reports import indicators

    period = indicators.parse_period(request.args.get("period"))
    group = (request.args.get("group") or request.args.get("group_by") or "community").strip()
    report = indicators.compute(user, period, group)
    return json_response(
        {
            "period": {
                "label": period.label,
                "kind": period.kind,
                "start": S.instant(period.start),
                "end": S.instant(period.end),
            },
            "group": report.slice.name,
            "as_of": S.instant(report.as_of),
            "weights": report.weights,
            "definitions": {
                name: {"label": str(f.label), "how": str(f.how), "percent": f.percent}
                for name, f in indicators.FIGURES.items()
            },
            "rows": [row.as_dict(report.weights) for row in report.rows],
            "total": report.total.as_dict(report.weights),
        }
    )


@api_view("/ratings")
def ratings_view(user):
    """The property-firm credit ratings of a month: frozen when rated, else provisional."""
    from app.reports import rating

    if not rating.can_view_ratings(user):
        raise PermissionDenied(_("Only supervisors, administrators and property managers see firm ratings."))
    month = request.args.get("month") or rating.previous_complete_month()
    entries, frozen = rating.ratings_for(user, month)
    return json_response(
        {
            "month": rating.indicators.parse_period(month).label,
            "frozen": frozen,
            "items": [rating.entry_as_dict(entry) for entry in entries],
        }
    )
