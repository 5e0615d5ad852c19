"""How long ``fire()`` takes end to end: lock, rules, state change, event, timers, notifications, commit."""

from __future__ import annotations

from collections import defaultdict

from bench.common import summary, timer

LIFECYCLE = [
    ("grid_accept", "grid1", {}),
    ("dispatch_to_firm", "grid1", {"note": "已核实"}),
    ("firm_accept", "firm1", {}),
    ("firm_complete", "firm1", {"result": "已修复"}),
    ("signoff", "clerk1", {"contacted": True, "resolved": True, "satisfaction": "satisfied"}),
]


def run(app, cases: int = 100) -> dict:
    """Register ``cases`` cases and walk each through its lifecycle, timing every fire() + commit."""
    from sqlalchemy import select

    from app.auth.models import User
    from app.cases import services
    from app.cases.models import Case
    from app.extensions import db

    per_trigger: dict[str, list[float]] = defaultdict(list)
    register: list[float] = []
    with app.app_context():
        users = {u.username: u.id for u in db.session.scalars(select(User))}
        refs = []
        for index in range(cases):
            with timer() as took:
                case = services.register_case(
                    services.Intake(
                        category="water_leak",
                        description=f"基准测试 {index}",
                        compound="X01",
                        resident_name="测试",
                        resident_phone="13800000000",
                    ),
                    db.session.get(User, users["clerk1"]),
                )
                db.session.commit()
            register.append(took["ms"])
            refs.append(case.id)
        db.session.remove()
    for trigger, username, inputs in LIFECYCLE:
        for case_id in refs:
            with app.app_context():
                actor = db.session.get(User, users[username])
                case = db.session.get(Case, case_id)
                with timer() as took:
                    services.fire(case, trigger, actor, inputs=inputs)
                    db.session.commit()
                per_trigger[trigger].append(took["ms"])
    all_samples = [s for samples in per_trigger.values() for s in samples]
    return {
        "register": summary(register),
        "all": summary(all_samples),
        "per_trigger": {k: summary(v) for k, v in per_trigger.items()},
    }
