"""Open311 GeoReport v2 rules: services from categories, intake through the case services, public status.

Categories are the services (``service_code`` = category code). A POSTed request becomes a case through
:func:`app.cases.services.register_case` with the system as the actor and channel ``open311``; the
api_key's street is the fallback location. What the public endpoints show of a case never includes the
resident's name, phone, unit/room, or the words of a report taken by staff (they may hold personal
details); see :func:`request_view`.
"""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.cases import labels as L
from app.cases import services as cases
from app.cases.actors import SYSTEM_ACTOR
from app.cases.models import Case, Category
from app.core.i18n import is_english
from app.core.timeutil import parse_instant, to_local, utcnow
from app.extensions import db
from app.open311.models import Open311Key, Open311Token
from app.org.models import Community, Compound

MAX_DESCRIPTION = 4000
MAX_RESULTS = 1000
DEFAULT_WINDOW = timedelta(days=90)
DATATYPES = ("string", "number", "datetime", "text", "singlevaluelist", "multivaluelist")
ATTRIBUTE_RE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
FIRM_STATES = ("firm_dispatched", "firm_processing", "on_hold")
#: internal intake fields → the Open311 parameter a client sent
PARAMETER_OF_FIELD = {
    "category": "service_code",
    "description": "description",
    "latitude": "lat",
    "longitude": "long",
    "compound": "address_string",
    "street": "address_string",
    "address_text": "address_string",
    "resident_phone": "phone",
    "resident_name": "first_name",
}


class Open311Error(Exception):
    """One or more errors for the specification's error list; ``status`` is 400, 403 or 404."""

    def __init__(self, status: int, *descriptions: str):
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = list(descriptions)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [{"code": self.status, "description": text} for text in self.descriptions]


def _present(value: str | None) -> str | None:
    """An optional parameter: empty means absent (the specification's "Optional Arguments")."""
    if value is None:
        return None
    value = value.strip()
    return value or None


# ------------------------------------------------------------------------------------------- keys


def check_api_key(api_key: str | None, *, now: datetime | None = None) -> Open311Key:
    """The active key for ``api_key``; records its use. Raises :class:`Open311Error` 403."""
    api_key = _present(api_key)
    if api_key is None:
        raise Open311Error(403, "api_key was not provided: an api_key is required to submit a request.")
    key = db.session.scalar(select(Open311Key).where(Open311Key.key_hash == Open311Key.hash_key(api_key)))
    if key is None or key.is_revoked:
        raise Open311Error(403, "Invalid api_key received: the key is unknown or revoked.")
    key.last_used_at = now or utcnow()
    db.session.flush()
    return key


def issue_key(name: str, street_id: int | None = None) -> tuple[Open311Key, str]:
    """Create an Open311 api_key; returns the row and the key (shown once; only its hash is stored)."""
    secret = "o311_" + secrets.token_urlsafe(24)
    key = Open311Key(
        name=(name or "").strip()[:100] or "Open311",
        key_hash=Open311Key.hash_key(secret),
        prefix=secret[:12],
        street_id=street_id,
    )
    db.session.add(key)
    db.session.flush()
    return key, secret


# --------------------------------------------------------------------------------------- services


def active_services() -> list[Category]:
    return list(db.session.scalars(select(Category).where(Category.active.is_(True)).order_by(Category.sort_order)))


def service(code: str | None) -> Category:
    """The active category with ``code``. Raises :class:`Open311Error` 400 when no code, 404 when unknown."""
    code = _present(code)
    if code is None:
        raise Open311Error(400, "service_code was not provided.")
    category = db.session.scalar(select(Category).where(Category.code == code))
    if category is None or not category.active:
        raise Open311Error(404, f"service_code {code} was not found.")
    return category


def _attributes(category: Category) -> list[dict[str, Any]]:
    return sorted(category.attributes or [], key=lambda a: (a.get("order") or 0, a.get("code") or ""))


def service_view(category: Category) -> dict[str, Any]:
    """A service of ``services``: element names and order of the specification."""
    return {
        "service_code": category.code,
        "service_name": category.name,
        "description": category.description or f"{category.name_zh} / {category.name_en}",
        "metadata": bool(category.attributes),
        "type": "realtime",
        "keywords": f"{category.name_zh}, {category.name_en}",
        "group": L.workflow_label(category.workflow),
    }


def _datatype_description(datatype: str) -> str | None:
    return {
        "number": "A number, e.g. 2",
        "datetime": "A date and time in ISO 8601, e.g. 2026-11-25T09:30:00+08:00",
        "multivaluelist": "One or more keys from the list (attribute[code][]=key)",
        "singlevaluelist": "One key from the list",
    }.get(datatype)


def service_definition(category: Category) -> dict[str, Any]:
    """``services/{code}``: the category's attributes in the specification's shape."""
    english = is_english()
    return {
        "service_code": category.code,
        "attributes": [
            {
                "variable": True,
                "code": attribute.get("code"),
                "datatype": attribute.get("datatype") if attribute.get("datatype") in DATATYPES else "string",
                "required": bool(attribute.get("required")),
                "datatype_description": _datatype_description(attribute.get("datatype") or "string"),
                "order": int(attribute.get("order") or position),
                "description": attribute.get("description_en" if english else "description_zh")
                or attribute.get("description_zh")
                or attribute.get("code"),
                "values": [{"key": str(v.get("key")), "name": v.get("name")} for v in attribute.get("values") or []],
            }
            for position, attribute in enumerate(_attributes(category), start=1)
        ],
    }


# ---------------------------------------------------------------------------------------- intake


def parse_attributes(category: Category, values) -> dict[str, Any]:
    """Read ``attribute[code]`` / ``attribute[code][]`` parameters against the category's definition.

    Unknown codes are ignored. Raises :class:`Open311Error` 400 listing every missing required
    attribute and every value of the wrong type.
    """
    given: dict[str, list[str]] = {}
    for name, value in values.items(multi=True):
        match = ATTRIBUTE_RE.match(name)
        if match and value.strip():
            given.setdefault(match.group(1), []).append(value.strip())
    cleaned: dict[str, Any] = {}
    problems: list[str] = []
    for attribute in _attributes(category):
        code = attribute.get("code")
        datatype = attribute.get("datatype") or "string"
        answers = given.get(code, [])
        if not answers:
            if attribute.get("required"):
                problems.append(
                    f"attribute[{code}] is required for service {category.code}: "
                    f"{attribute.get('description_en') or attribute.get('description_zh') or code}."
                )
            continue
        keys = {str(v.get("key")) for v in attribute.get("values") or []}
        if datatype == "multivaluelist":
            wrong = [a for a in answers if a not in keys]
            if wrong:
                problems.append(f"attribute[{code}]: {', '.join(wrong)} is not one of {', '.join(sorted(keys))}.")
            else:
                cleaned[code] = answers
            continue
        answer = answers[-1]
        if len(answer) > 1000:
            problems.append(f"attribute[{code}] is longer than 1000 characters.")
        elif datatype == "singlevaluelist" and answer not in keys:
            problems.append(f"attribute[{code}]: {answer} is not one of {', '.join(sorted(keys))}.")
        elif datatype == "number":
            try:
                number = float(answer)
                if not math.isfinite(number):
                    raise ValueError
            except ValueError:
                problems.append(f"attribute[{code}] must be a number.")
            else:
                cleaned[code] = int(number) if number.is_integer() and abs(number) < 2**53 else number
        elif datatype == "datetime":
            try:
                cleaned[code] = parse_instant(answer).isoformat()
            except ValueError:
                problems.append(f"attribute[{code}] must be an ISO 8601 date-time.")
        else:
            cleaned[code] = answer
    if problems:
        raise Open311Error(400, *problems)
    return cleaned


def match_compound(address_string: str | None, address_id: str | None, street_id: int | None) -> Compound | None:
    """The compound an Open311 location names: ``address_id`` as a compound code, else the compound whose
    name appears in ``address_string`` (the longest name wins), within the key's street when it has one."""
    query = select(Compound).join(Community, Community.id == Compound.community_id)
    if street_id is not None:
        query = query.where(Community.street_id == street_id)
    if address_id:
        found = db.session.scalar(query.where(Compound.code == address_id))
        if found is not None:
            return found
    if not address_string:
        return None
    candidates = db.session.scalars(
        query.where(func.length(Compound.name) >= 2).order_by(func.length(Compound.name).desc(), Compound.id)
    )
    return next((c for c in candidates if c.name in address_string), None)


def _location(values: Mapping[str, str]) -> tuple[str | None, str | None, str | None, str | None]:
    lat, long = _present(values.get("lat")), _present(values.get("long"))
    address_string, address_id = _present(values.get("address_string")), _present(values.get("address_id"))
    if (lat is None) != (long is None) and not (address_string or address_id):
        raise Open311Error(400, "lat and long must be sent together.")
    if lat is None and address_string is None and address_id is None:
        raise Open311Error(400, "A location is required: send lat and long, or address_string, or address_id.")
    return lat, long, address_string, address_id


def submit_request(values, key: Open311Key, *, now: datetime | None = None) -> tuple[Case, Open311Token]:
    """Register a case from a POSTed Open311 request (form values) for ``key``'s client.

    Raises :class:`Open311Error` 400 (missing or invalid parameter, missing required attribute,
    unusable location) or 404 (unknown service_code).
    """
    now = now or utcnow()
    category = service(values.get("service_code"))
    lat, long, address_string, address_id = _location(values)
    attributes = parse_attributes(category, values)
    description = (values.get("description") or "").strip()
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters.")
    if len(description) < 5:
        description = f"{category.name_zh}（Open311）" + (f"：{description}" if description else "")
    contact = {
        name: _present(values.get(name))
        for name in ("first_name", "last_name", "email", "phone", "account_id", "device_id", "media_url")
        if _present(values.get(name))
    }
    contact = {name: value[:200] for name, value in contact.items()}
    phone = re.sub(r"[\s-]", "", contact.get("phone", ""))
    if phone.startswith("+86"):
        phone = phone[3:]
    name = ((contact.get("last_name") or "") + (contact.get("first_name") or "")).strip()[:50]
    compound = match_compound(address_string, address_id, key.street_id)
    intake = cases.Intake(
        category=category.code,
        description=description,
        channel="open311",
        compound=compound.id if compound is not None else None,
        address_text=(address_string or address_id or "")[:200] or None,
        latitude=lat,
        longitude=long,
        street=key.street_id,
        resident_name=name or None,
        resident_phone=phone if cases.MOBILE_RE.match(phone) else None,
        extra={"attributes": attributes, "contact": contact, "open311_key": key.prefix},
    )
    try:
        case = cases.register_case(intake, SYSTEM_ACTOR, now=now)
    except cases.FieldErrors as error:
        raise Open311Error(
            400, *(f"{PARAMETER_OF_FIELD.get(field, field)}: {message}" for field, message in error.errors.items())
        ) from None
    token = Open311Token(token=secrets.token_hex(16), case_id=case.id, created_at=now)
    db.session.add(token)
    db.session.flush()
    return case, token


def service_notice(case: Case) -> str:
    if case.assigned_grid_worker_id is not None:
        return _(
            "Registered as %(ref)s and sent to the grid worker of %(place)s.",
            ref=case.ref,
            place=case.compound.name if case.compound else case.street.name,
        )
    return _("Registered as %(ref)s; a supervisor will route it to the right grid worker.", ref=case.ref)


# ------------------------------------------------------------------------------------------ status


def _eager(query):
    return query.options(
        selectinload(Case.category),
        selectinload(Case.compound),
        selectinload(Case.community),
        selectinload(Case.street),
        selectinload(Case.firm),
        selectinload(Case.branch),
    )


def request_by_id(service_request_id: str) -> Case:
    """Raises :class:`Open311Error` 404 for an unknown id."""
    ref = (service_request_id or "").strip().upper()
    case = db.session.scalar(_eager(select(Case).where(Case.ref == ref))) if ref else None
    if case is None:
        raise Open311Error(404, f"service_request_id {service_request_id} was not found.")
    return case


def request_for_token(token: str) -> tuple[Open311Token, Case]:
    """Raises :class:`Open311Error` 404 for an unknown token."""
    row = db.session.scalar(select(Open311Token).where(Open311Token.token == (token or "").strip()))
    if row is None:
        raise Open311Error(404, f"token {token} was not found.")
    return row, db.session.get(Case, row.case_id)


def _instant(text: str, name: str) -> datetime:
    try:
        value = parse_instant(text)
    except ValueError:
        raise Open311Error(400, f"{name} must be a w3 date-time such as 2010-01-01T00:00:00Z.") from None
    if not 1900 <= value.year <= 9998:
        raise Open311Error(400, f"{name} is out of range.")
    return value


def search_requests(values: Mapping[str, str], *, now: datetime | None = None) -> list[Case]:
    """``GET requests``: by ``service_request_id`` (comma-separated; overrides everything else), or by
    ``service_code``, ``status`` and ``start_date``/``end_date`` (default: the last 90 days; a range may
    not span more than 90 days). At most 1000 requests, newest first. Raises :class:`Open311Error` 400."""
    now = now or utcnow()
    ids = _present(values.get("service_request_id"))
    if ids is not None:
        refs = [part.strip().upper() for part in ids.split(",") if part.strip()][:MAX_RESULTS]
        query = select(Case).where(Case.ref.in_(refs)).order_by(Case.created_at.desc(), Case.id.desc())
        return list(db.session.scalars(_eager(query)))
    query = select(Case)
    codes = _present(values.get("service_code"))
    if codes is not None:
        wanted = [part.strip() for part in codes.split(",") if part.strip()]
        query = query.join(Category, Category.id == Case.category_id).where(Category.code.in_(wanted))
    status = _present(values.get("status"))
    if status is not None:
        wanted = {part.strip().lower() for part in status.split(",") if part.strip()}
        if not wanted <= {"open", "closed"}:
            raise Open311Error(400, "status is open, closed or both (comma-separated).")
        if wanted == {"open"}:
            query = query.where(Case.state != "closed")
        elif wanted == {"closed"}:
            query = query.where(Case.state == "closed")
    start, end = _present(values.get("start_date")), _present(values.get("end_date"))
    start_at = _instant(start, "start_date") if start else None
    end_at = _instant(end, "end_date") if end else None
    if start_at is None and end_at is None:
        end_at, start_at = now, now - DEFAULT_WINDOW
    elif start_at is None:
        start_at = end_at - DEFAULT_WINDOW
    elif end_at is None:
        end_at = start_at + DEFAULT_WINDOW
    if end_at < start_at:
        raise Open311Error(400, "end_date is before start_date.")
    if end_at - start_at > DEFAULT_WINDOW:
        raise Open311Error(400, "start_date and end_date may not span more than 90 days.")
    query = query.where(Case.created_at >= start_at, Case.created_at <= end_at)
    query = query.order_by(Case.created_at.desc(), Case.id.desc()).limit(MAX_RESULTS)
    return list(db.session.scalars(_eager(query)))


def w3(value: datetime | None) -> str | None:
    """A w3/ISO 8601 date-time with its offset, e.g. 2026-11-25T09:30:00+08:00."""
    local = to_local(value)
    return local.isoformat(timespec="seconds") if local else None


def _status_notes(case: Case) -> str:
    label = L.state_label(case.state)
    if case.state == "closed" and case.resolution:
        return (
            f"{label}：{L.resolution_label(case.resolution)}"
            if not is_english()
            else f"{label}: {L.resolution_label(case.resolution)}"
        )
    return label


def _agency(case: Case) -> str | None:
    if case.state in FIRM_STATES and case.firm is not None:
        return case.firm.name
    if case.state == "branch_review" and case.branch is not None:
        return case.branch.name
    if case.community is not None:
        return case.community.name
    return case.street.name if case.street is not None else None


def _address(case: Case) -> str | None:
    """From most specific to most general; never the unit/room."""
    if case.compound is not None:
        parts = [case.compound.name, case.compound.address, getattr(case.community, "name", None)]
        parts.append(getattr(case.street, "name", None))
        return ", ".join(p for p in parts if p)
    if case.channel == "open311":
        return case.address_text  # what the public client itself sent
    # an address staff typed may name a flat or a person: publish only the area
    return (
        ", ".join(p for p in (getattr(case.community, "name", None), getattr(case.street, "name", None)) if p) or None
    )


def request_view(case: Case) -> dict[str, Any]:
    """A request of ``service_requests`` (element names and order of the specification).

    Public: no resident name, phone or unit; the description only for requests that came in through
    Open311 (what staff typed for a resident may hold personal details).
    """
    closed = case.state == "closed"
    return {
        "service_request_id": case.ref,
        "status": "closed" if closed else "open",
        "status_notes": _status_notes(case),
        "service_name": case.category.name,
        "service_code": case.category.code,
        "description": case.description if case.channel == "open311" else None,
        "agency_responsible": _agency(case),
        "service_notice": None,
        "requested_datetime": w3(case.created_at),
        "updated_datetime": w3(case.closed_at if closed and case.closed_at else case.updated_at),
        "expected_datetime": w3(getattr(case, "resolve_by", None)),
        "address": _address(case),
        "address_id": case.compound.code if case.compound is not None else None,
        "zipcode": None,
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": None,
    }
