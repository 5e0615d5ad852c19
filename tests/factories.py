"""Build cases in any state through the real services (never by writing ``state`` directly)."""

from __future__ import annotations

from contextlib import contextmanager

from flask import current_app, has_app_context
from sqlalchemy import select

from app.auth.models import User
from app.cases import services
from app.cases.models import Case, Category
from app.extensions import db

#: the path from intake to each state, as (trigger, username, inputs)
PATHS = {
    "grid_assigned": [],
    "grid_handling": [("grid_accept", "@grid", {})],
    "branch_review": [("grid_accept", "@grid", {}), ("refer_to_branch", "@grid", {"note": "需业委会先议"})],
    "firm_dispatched": [("grid_accept", "@grid", {}), ("dispatch_to_firm", "@grid", {"note": "已核实"})],
    "firm_processing": [("grid_accept", "@grid", {}), ("dispatch_to_firm", "@grid", {}), ("firm_accept", "@firm", {})],
    "on_hold": [
        ("grid_accept", "@grid", {}),
        ("dispatch_to_firm", "@grid", {}),
        ("firm_accept", "@firm", {}),
        ("hold", "@firm", {"reason": "waiting_parts", "note": "等待电梯配件"}),
    ],
    "awaiting_signoff": [
        ("grid_accept", "@grid", {}),
        ("dispatch_to_firm", "@grid", {}),
        ("firm_accept", "@firm", {}),
        ("firm_complete", "@firm", {"result": "已修复"}),
    ],
    "closed": [
        ("grid_accept", "@grid", {}),
        ("dispatch_to_firm", "@grid", {}),
        ("firm_accept", "@firm", {}),
        ("firm_complete", "@firm", {"result": "已修复"}),
        ("signoff", "clerk1", {"contacted": True, "resolved": True, "satisfaction": "satisfied"}),
    ],
}
PREDELIBERATION_PATHS = {
    "firm_dispatched": [
        ("grid_accept", "@grid", {}),
        ("refer_to_branch", "@grid", {"note": "维修资金"}),
        ("branch_approve", "@branch", {"note": "同意"}),
    ],
}
# compound → (grid worker, firm manager, branch secretary) in the demo data
HANDLERS = {
    "X01": ("grid1", "firm1", "branch1"),
    "X02": ("grid1", "firm1", None),
    "X03": ("grid2", "firm2", None),
    "X05": ("grid3", "firm2", None),
}


def user(username: str) -> User:
    return db.session.scalar(select(User).where(User.username == username))


@contextmanager
def _context():
    if has_app_context():
        yield False
    else:
        with current_app_or_test_app().app_context():
            yield


_TEST_APP = None


def current_app_or_test_app():
    return current_app._get_current_object() if has_app_context() else _TEST_APP


def make_case(
    state: str = "grid_assigned",
    *,
    category: str = "water_leak",
    compound: str = "X01",
    urgency: str | None = None,
    now=None,
    description: str = "楼道水管漏水，地面积水",
    resident_phone: str = "13812345678",
    building: str | None = None,
    channel: str = "window",
    clerk: str = "clerk1",
) -> str:
    """Register a case and drive it to ``state``; returns its reference number."""
    with _context():
        grid, firm, branch = HANDLERS.get(compound, ("grid1", "firm1", "branch1"))
        intake = services.Intake(
            category=category,
            description=description,
            channel=channel,
            compound=compound,
            building=building,
            urgency=urgency,
            resident_name="陈先生",
            resident_phone=resident_phone,
        )
        case = services.register_case(intake, user(clerk), now=now)
        workflow = db.session.scalar(select(Category.workflow).where(Category.code == category))
        path = (PREDELIBERATION_PATHS.get(state) if workflow == "predeliberation" else None) or PATHS[state]
        names = {"@grid": grid, "@firm": firm, "@branch": branch}
        for trigger, who, inputs in path:
            services.fire(case, trigger, user(names.get(who, who)), inputs=inputs, now=now)
        assert case.state == state, (case.state, state)
        ref = case.ref
        db.session.commit()  # in tests this releases a savepoint of the test's transaction
        return ref


def load(ref: str) -> Case:
    return db.session.scalar(select(Case).where(Case.ref == ref))


#: a real 2×2 PNG (uploads are decoded and re-encoded: a signature followed by junk is refused)
PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x02\x08\x02\x00\x00\x00\xfd\xd4\x9as\x00"
    b"\x00\x00\x16IDATx\x9cc<!'\xc7\xc0\xc0\xc0\xc4\xc0\xc0\xc0\xc0\xc0\x00\x00\r\x04\x01\x08}q\xcaf\x00\x00\x00"
    b"\x00IEND\xaeB`\x82"
)
