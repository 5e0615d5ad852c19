"""Roles and the scope each role is bound to (DESIGN §2).

The workflow definitions in ``workflows/`` use the same role names as plain strings.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

CLERK = "clerk"
GRID_WORKER = "grid_worker"
PROPERTY_MANAGER = "property_manager"
BRANCH_SECRETARY = "branch_secretary"
SUPERVISOR = "supervisor"
ADMIN = "admin"

ROLES = (CLERK, GRID_WORKER, PROPERTY_MANAGER, BRANCH_SECRETARY, SUPERVISOR, ADMIN)

ROLE_LABELS = {
    CLERK: _l("Service-desk clerk"),
    GRID_WORKER: _l("Grid worker"),
    PROPERTY_MANAGER: _l("Property manager"),
    BRANCH_SECRETARY: _l("Party-branch secretary"),
    SUPERVISOR: _l("Supervisor"),
    ADMIN: _l("Administrator"),
}

# Scope kinds: the column on ``User`` that holds the scope object's id.
STATION = "station"
GRID = "grid"
FIRM = "firm"
BRANCH = "branch"
COMMUNITY = "community"
STREET = "street"

SCOPE_LABELS = {
    STATION: _l("Service station"),
    GRID: _l("Grid"),
    FIRM: _l("Property firm"),
    BRANCH: _l("Party branch"),
    COMMUNITY: _l("Community"),
    STREET: _l("Street"),
}

#: Which scope kinds each role accepts. Administrators need none.
ROLE_SCOPES: dict[str, tuple[str, ...]] = {
    CLERK: (STATION,),
    GRID_WORKER: (GRID,),
    PROPERTY_MANAGER: (FIRM,),
    BRANCH_SECRETARY: (BRANCH,),
    SUPERVISOR: (COMMUNITY, STREET),
    ADMIN: (),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))
