"""Cached look-ups of organisation rows and categories for intake and routing (issue 12).

Each function returns an instance of the request's session (merged from the per-process cache of
:mod:`app.core.settings_cache` without SQL) or ``None``. Invalidation is the cache's: any write to
these tables empties it, in this process at once and in the others within a second.
"""

from __future__ import annotations

import functools
from datetime import date

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session, joinedload
from sqlalchemy.orm.util import identity_key

from app.cases.models import Category
from app.core import settings_cache
from app.core.params import parse_id
from app.extensions import db
from app.org.models import (
    Building,
    Community,
    Compound,
    FirmContract,
    Grid,
    PartyBranch,
    PropertyFirm,
    ServiceStation,
    Street,
)


@functools.cache
def _eager() -> dict:
    """What readers of each kind use without a session: loaded with the row (built on first use, once
    every mapper is configured, so this module can be imported early)."""
    return {
        Compound: (joinedload(Compound.community).joinedload(Community.street), joinedload(Compound.grid)),
        Community: (joinedload(Community.street),),
        Grid: (joinedload(Grid.community),),
        ServiceStation: (joinedload(ServiceStation.community),),
    }


def _options(model):
    return _eager().get(model, ())


def _by_id(model, number: int):
    def load(session: Session):
        return session.scalar(select(model).where(model.id == number).options(*_options(model)))

    return settings_cache.get(("id", model.__tablename__, number), load, keep_none=False)


def get(model, number: int | None):
    """The ``model`` row with this id, or None."""
    if number is None:
        return None
    return settings_cache.attach(_by_id(model, number))


def find(model, ref, *, by_name: bool = True):
    """A row by id, then by code, then (``by_name``) by name — the rules of intake's look-ups."""
    if ref in (None, ""):
        return None
    number = parse_id(ref)
    if number is not None:
        obj = _by_id(model, number)
        if obj is not None:
            return settings_cache.attach(obj)
    text = str(ref)

    def load(session: Session):
        options = _options(model)
        if hasattr(model, "code"):
            obj = session.scalar(select(model).where(model.code == text).options(*options))
            if obj is not None:
                return obj
        if by_name and hasattr(model, "name") and not isinstance(getattr(model, "name", None), property):
            return session.scalar(select(model).where(model.name == text).options(*options).limit(1))
        return None

    return settings_cache.attach(settings_cache.get(("ref", model.__tablename__, text, by_name), load, keep_none=False))


def building_in(compound_id: int, name: str):
    """The building called ``name`` in a compound, or None."""

    def load(session: Session):
        return session.scalar(select(Building).where(Building.compound_id == compound_id, Building.name == name))

    return settings_cache.attach(settings_cache.get(("building", compound_id, name), load, keep_none=False))


def routing_of(compound_id: int, day: date) -> tuple[int | None, int | None]:
    """``(firm_id, branch_id)`` serving a compound on ``day``: the latest contract in force, its branch.

    The compound's contracts are cached (one entry per compound, whatever the day asked)."""

    def load(session: Session):
        contracts = session.execute(
            select(FirmContract.start_date, FirmContract.end_date, FirmContract.firm_id)
            .where(FirmContract.compound_id == compound_id)
            .order_by(FirmContract.start_date.desc(), FirmContract.id.desc())
        ).all()
        branch_id = session.scalar(select(PartyBranch.id).where(PartyBranch.compound_id == compound_id))
        return tuple(tuple(row) for row in contracts), branch_id

    contracts, branch_id = settings_cache.get(("routing", compound_id), load)
    firm_id = next((firm for start, end, firm in contracts if start <= day and (end is None or end >= day)), None)
    return firm_id, branch_id


def prime_case(case) -> None:
    """Put the rows a case's serializer reads (its category and organisation) into the session, so
    ``case.compound``, ``case.firm`` … are answered from the identity map without SQL. Rows the session
    holds already (the intake attached the compound with its community, street and grid) stay as they are."""
    held = db.session.identity_map
    for model, number in (
        (Category, case.category_id),
        (Street, case.street_id),
        (Community, case.community_id),
        (Compound, case.compound_id),
        (Building, case.building_id),
        (Grid, case.grid_id),
        (PropertyFirm, case.firm_id),
        (PartyBranch, case.branch_id),
        (ServiceStation, case.station_id),
    ):
        if number is not None:
            present = held.get(identity_key(model, number))
            if present is None or inspect(present).expired_attributes:
                get(model, number)


def categories() -> tuple[Category, ...]:
    """Every category in its sort order (the list filter's options): detached instances, read only."""

    def load(session: Session):
        return tuple(session.scalars(select(Category).order_by(Category.sort_order)))

    return settings_cache.get(("categories",), load)


def prime_rows(cases) -> None:
    """Put the categories and compounds a page of cases shows into the session from the cache, so
    ``case.category`` and ``case.compound`` are answered from the identity map (no SQL per page)."""
    for number in {case.category_id for case in cases}:
        get(Category, number)
    for number in {case.compound_id for case in cases if case.compound_id is not None}:
        get(Compound, number)


keep_alive = settings_cache.keep_alive
