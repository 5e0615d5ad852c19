"""Role and scope predicates used for every object check.

Two levels (STYLE rule 7): a route decorator for the role, then an object check after loading.
Objects that carry the routing columns (``community_id``, ``street_id``, ``grid_id``, ``firm_id``,
``branch_id``; cases do) are checked with :func:`in_scope`, and listed with :func:`scope_clause`.
"""

from __future__ import annotations

from functools import wraps

from flask import abort
from flask_login import current_user, login_required
from sqlalchemy import false, true

from app.auth import roles


def role_required(*allowed: str):
    """Decorator: log in first, then 403 unless the user has one of ``allowed`` roles."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in allowed:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


admin_required = role_required(roles.ADMIN)


def is_admin(user) -> bool:
    return user is not None and getattr(user, "role", None) == roles.ADMIN


def station_community_id(user) -> int | None:
    station = getattr(user, "station", None)
    return station.community_id if station is not None else None


def in_scope(user, obj) -> bool:
    """Whether ``obj`` (a case or anything with its routing columns) is inside ``user``'s scope.

    Clerks see their station's community, grid workers their grid, property managers what was given
    to their firm, branch secretaries their compound's branch, supervisors their community or street,
    administrators everything.
    """
    if user is None or not getattr(user, "is_active", False):
        return False
    role = user.role
    if role == roles.ADMIN:
        return True
    if role == roles.CLERK:
        return obj.community_id is not None and obj.community_id == station_community_id(user)
    if role == roles.GRID_WORKER:
        return user.grid_id is not None and obj.grid_id == user.grid_id
    if role == roles.PROPERTY_MANAGER:
        return user.firm_id is not None and obj.firm_id == user.firm_id and getattr(obj, "firm_visible", True)
    if role == roles.BRANCH_SECRETARY:
        return user.branch_id is not None and obj.branch_id == user.branch_id
    if role == roles.SUPERVISOR:
        if user.street_id is not None:
            return obj.street_id == user.street_id
        return user.community_id is not None and obj.community_id == user.community_id
    return False


def scope_clause(user, model):
    """A SQL condition on ``model``'s routing columns equivalent to :func:`in_scope` for lists.

    ``model`` may define ``firm_visible_clause()`` to narrow what property managers see.
    """
    if user is None or not getattr(user, "is_active", False):
        return false()
    role = user.role
    if role == roles.ADMIN:
        return true()
    if role == roles.CLERK:
        community_id = station_community_id(user)
        return model.community_id == community_id if community_id is not None else false()
    if role == roles.GRID_WORKER:
        return model.grid_id == user.grid_id if user.grid_id is not None else false()
    if role == roles.PROPERTY_MANAGER:
        if user.firm_id is None:
            return false()
        clause = model.firm_id == user.firm_id
        narrower = getattr(model, "firm_visible_clause", None)
        return clause & narrower() if narrower is not None else clause
    if role == roles.BRANCH_SECRETARY:
        return model.branch_id == user.branch_id if user.branch_id is not None else false()
    if role == roles.SUPERVISOR:
        if user.street_id is not None:
            return model.street_id == user.street_id
        return model.community_id == user.community_id if user.community_id is not None else false()
    return false()


def is_street_supervisor(user) -> bool:
    return user.role == roles.SUPERVISOR and user.street_id is not None


def is_community_supervisor(user) -> bool:
    return user.role == roles.SUPERVISOR and user.community_id is not None


def can_see_resident_phone(user, case=None) -> bool:
    """Whether ``user`` sees a resident's phone number (and a second reporter's contact) in full.

    The one rule for the case page, the API and the history: property-firm staff see it masked and
    reveal it with a reason when they need to call (``app/privacy``: audited, written on the case).
    Everyone else who may see the case sees the number.
    """
    if user is None or not getattr(user, "is_active", False):
        return False
    if user.role == roles.PROPERTY_MANAGER:
        return False
    return case is None or in_scope(user, case)


def can_reveal_resident_phone(user, case) -> bool:
    """Whether ``user`` may reveal the masked phone of ``case`` (property-firm staff, in scope)."""
    return (
        user is not None
        and getattr(user, "is_active", False)
        and user.role == roles.PROPERTY_MANAGER
        and in_scope(user, case)
        and bool(case.resident_phone)
    )
