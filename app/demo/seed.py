"""``seed-demo``: an idempotent demo installation (names after Chizhou's 秋浦街道)."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.auth import roles
from app.auth.models import User
from app.cases.defaults import ensure_default_categories
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

DEMO_PASSWORD = "Demo@2026"
DEMO_OPEN311_KEY = "demo-open311-key"

STREET = ("S01", "秋浦街道")
COMMUNITIES = (
    ("C01", "杏花村社区"),
    ("C02", "清风社区"),
    ("C03", "平天湖社区"),
)
# grid code, name, community code
GRIDS = (
    ("G01", "杏花村第一网格", "C01"),
    ("G02", "杏花村第二网格", "C01"),
    ("G03", "清风第一网格", "C02"),
    ("G04", "平天湖第一网格", "C03"),
    ("G05", "平天湖第二网格", "C03"),
)
FIRMS = (
    ("F01", "池州红帆物业服务有限公司", "91341700MA2N0KXX1A", "汪建国", "0566-2021001"),
    ("F02", "池州安居物业管理有限公司", "91341700MA2N0KYY2B", "陈丽华", "0566-2021002"),
)
# compound code, name, community, grid, firm, address, number of buildings
COMPOUNDS = (
    ("X01", "阳光花园", "C01", "G01", "F01", "秋浦西路88号", 12),
    ("X02", "翠湖苑", "C01", "G01", "F01", "翠微路16号", 8),
    ("X03", "杏花村小区", "C01", "G02", "F02", "杏花村路5号", 10),
    ("X04", "金域华府", "C01", "G02", "F01", "长江南路200号", 15),
    ("X05", "清溪雅苑", "C02", "G03", "F02", "清溪大道66号", 9),
    ("X06", "康居家园", "C02", "G03", "F02", "建设路31号", 6),
    ("X07", "书香门第", "C02", "G03", "F01", "百牙路12号", 7),
    ("X08", "天湖名郡", "C03", "G04", "F02", "平天湖东路9号", 14),
    ("X09", "锦绣江南", "C03", "G04", "F01", "池阳路150号", 11),
    ("X10", "梧桐小区", "C03", "G05", "F02", "梧桐路3号", 5),
)
STATIONS = (
    ("ST01", "杏花村社区党群服务站", "C01", "杏花村路1号", "0566-2100001"),
    ("ST02", "清风社区党群服务站", "C02", "清溪大道1号", "0566-2100002"),
    ("ST03", "平天湖社区党群服务站", "C03", "平天湖东路1号", "0566-2100003"),
)
# username, display name, role, scope kind, scope code, mobile
USERS = (
    ("clerk1", "李静（受理员）", roles.CLERK, "station", "ST01", "13905661001"),
    ("clerk2", "周敏（受理员）", roles.CLERK, "station", "ST02", "13905661002"),
    ("grid1", "王磊（网格员）", roles.GRID_WORKER, "grid", "G01", "13905662001"),
    ("grid2", "刘芳（网格员）", roles.GRID_WORKER, "grid", "G02", "13905662002"),
    ("grid3", "赵强（网格员）", roles.GRID_WORKER, "grid", "G03", "13905662003"),
    ("grid4", "孙丽（网格员）", roles.GRID_WORKER, "grid", "G04", "13905662004"),
    ("grid5", "吴涛（网格员）", roles.GRID_WORKER, "grid", "G05", "13905662005"),
    ("firm1", "汪建国（红帆物业）", roles.PROPERTY_MANAGER, "firm", "F01", "13905663001"),
    ("firm2", "陈丽华（安居物业）", roles.PROPERTY_MANAGER, "firm", "F02", "13905663002"),
    ("branch1", "张红（阳光花园党支部书记）", roles.BRANCH_SECRETARY, "branch", "B-X01", "13905664001"),
    ("supervisor1", "黄志明（杏花村社区督办）", roles.SUPERVISOR, "community", "C01", "13905665001"),
    ("supervisor2", "何雪（清风社区督办）", roles.SUPERVISOR, "community", "C02", "13905665002"),
    ("supervisor3", "郑斌（平天湖社区督办）", roles.SUPERVISOR, "community", "C03", "13905665003"),
    ("street1", "方正（秋浦街道督办）", roles.SUPERVISOR, "street", "S01", "13905666001"),
    ("admin", "系统管理员", roles.ADMIN, None, None, None),
)
DEMO_ACCOUNTS_TEXT = (
    "clerk1 (受理员 clerk) · grid1 (网格员 grid worker) · firm1 / firm2 (物业 property managers) · "
    "branch1 (支部书记 branch secretary) · supervisor1 (社区督办 supervisor) · street1 (街道督办 street "
    "supervisor) · admin (管理员)"
)


def _get_or_create(model, code: str, **fields):
    obj = db.session.scalar(select(model).where(model.code == code))
    if obj is None:
        obj = model(code=code, **fields)
        db.session.add(obj)
        db.session.flush()
    return obj


def seed_organisation() -> dict[str, dict[str, object]]:
    """Create the demo street, communities, grids, compounds, buildings, firms, contracts, branches."""
    made: dict[str, dict[str, object]] = {
        "community": {},
        "grid": {},
        "firm": {},
        "compound": {},
        "station": {},
        "branch": {},
    }
    street = _get_or_create(Street, STREET[0], name=STREET[1])
    made["street"] = {STREET[0]: street}
    for code, name in COMMUNITIES:
        made["community"][code] = _get_or_create(Community, code, name=name, street_id=street.id)
    for code, name, community in GRIDS:
        made["grid"][code] = _get_or_create(Grid, code, name=name, community_id=made["community"][community].id)
    for code, name, credit, contact, phone in FIRMS:
        made["firm"][code] = _get_or_create(
            PropertyFirm, code, name=name, credit_code=credit, contact_name=contact, contact_phone=phone
        )
    for code, name, community, address, phone in STATIONS:
        made["station"][code] = _get_or_create(
            ServiceStation, code, name=name, address=address, phone=phone, community_id=made["community"][community].id
        )
    for code, name, community, grid, firm, address, buildings in COMPOUNDS:
        compound = _get_or_create(
            Compound,
            code,
            name=name,
            address=address,
            community_id=made["community"][community].id,
            grid_id=made["grid"][grid].id,
        )
        made["compound"][code] = compound
        existing = set(db.session.scalars(select(Building.name).where(Building.compound_id == compound.id)))
        for number in range(1, buildings + 1):
            if f"{number}栋" not in existing:
                db.session.add(Building(compound_id=compound.id, name=f"{number}栋"))
        has_contract = db.session.scalar(select(FirmContract.id).where(FirmContract.compound_id == compound.id))
        if not has_contract:
            db.session.add(
                FirmContract(
                    compound_id=compound.id,
                    firm_id=made["firm"][firm].id,
                    start_date=date(2024, 1, 1),
                    end_date=date(2027, 12, 31),
                )
            )
        made["branch"][f"B-{code}"] = _get_or_create(
            PartyBranch, f"B-{code}", name=f"{name}党支部", compound_id=compound.id
        )
    db.session.flush()
    return made


def seed_users(made) -> dict[str, User]:
    users = {}
    for username, display, role, kind, code, mobile in USERS:
        user = db.session.scalar(select(User).where(User.username == username))
        if user is None:
            user = User(username=username, display_name=display, role=role, phone=mobile, active=True)
            user.set_password(DEMO_PASSWORD)
            if kind is not None:
                setattr(user, f"{kind}_id", made[kind][code].id)
            db.session.add(user)
        users[username] = user
    db.session.flush()
    return users


def seed_open311_key(street) -> None:
    from app.open311.models import Open311Key

    digest = Open311Key.hash_key(DEMO_OPEN311_KEY)
    if db.session.scalar(select(Open311Key.id).where(Open311Key.key_hash == digest)) is None:
        db.session.add(
            Open311Key(name="演示 Open311 客户端", key_hash=digest, prefix=DEMO_OPEN311_KEY[:8], street_id=street.id)
        )
        db.session.flush()


def seed_demo(with_cases: bool = True) -> dict[str, int]:
    """Create (or complete) the demo installation. Idempotent. Returns counts of what exists."""
    ensure_default_categories()
    made = seed_organisation()
    users = seed_users(made)
    seed_open311_key(made["street"][STREET[0]])
    cases = 0
    if with_cases:
        from app.demo.cases import seed_demo_cases

        cases = seed_demo_cases(users)
        from app.notify.resident import hold_demo_messages

        hold_demo_messages()  # demo residents' numbers are made up: never text them
    return {"compounds": len(made["compound"]), "users": len(users), "cases": cases}
