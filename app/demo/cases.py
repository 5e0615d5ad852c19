"""Demo cases in every state, made through the real services at times spread over the last weeks."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from app.cases import services
from app.cases.actors import SYSTEM_ACTOR
from app.cases.models import Case
from app.core.timeutil import utcnow
from app.extensions import db

# compound code → (grid worker, firm manager, branch secretary or None, clerk)
HANDLERS = {
    "X01": ("grid1", "firm1", "branch1", "clerk1"),
    "X02": ("grid1", "firm1", None, "clerk1"),
    "X03": ("grid2", "firm2", None, "clerk1"),
    "X04": ("grid2", "firm1", None, "clerk1"),
    "X05": ("grid3", "firm2", None, "clerk2"),
    "X06": ("grid3", "firm2", None, "clerk2"),
    "X07": ("grid3", "firm1", None, "clerk2"),
    "X08": ("grid4", "firm2", None, "supervisor3"),
    "X09": ("grid4", "firm1", None, "supervisor3"),
    "X10": ("grid5", "firm2", None, "supervisor3"),
}
RESIDENTS = ("陈先生", "王阿姨", "李女士", "张大爷", "刘先生", "赵女士", "周先生", "吴阿姨", "郑先生", "孙女士")
# (category, compound, description, target state, days ago, extra)
SCENARIOS = (
    ("water_leak", "X01", "3栋2单元楼道顶部渗水，墙皮脱落", "grid_assigned", 0.1, {}),
    ("lift_entrapment", "X04", "8栋电梯困人，两名老人被困", "grid_assigned", 0.02, {}),
    ("garbage", "X02", "小区东门垃圾桶满溢三天未清运，有异味", "grid_handling", 0.4, {}),
    ("noise", "X03", "楼上装修晚上十点后仍在施工", "grid_handling", 1.2, {}),
    ("maintenance_fund", "X01", "5栋外墙脱落需维修，拟动用专项维修资金", "branch_review", 3, {}),
    ("ad_income", "X01", "电梯广告收益如何分配，请公开账目", "branch_review", 6, {}),
    ("lighting", "X07", "地下车库B区照明全部不亮", "firm_dispatched", 0.6, {}),
    ("drainage", "X05", "2栋下水道堵塞，一楼返水", "firm_dispatched", 2, {}),
    ("lift_fault", "X09", "6栋电梯按键失灵，经常停错楼层", "firm_processing", 2.5, {}),
    ("green_space", "X06", "中心花园树木倒伏，影响通行", "firm_processing", 5, {}),
    ("facilities", "X08", "儿童游乐设施滑梯断裂，存在安全隐患", "firm_processing", 12, {}),
    ("water_outage", "X10", "整栋楼停水，无任何通知", "firm_processing", 0.3, {"urgency": "urgent"}),
    ("lift_fault", "X04", "2栋电梯异响，需更换曳引机配件", "on_hold", 4, {}),
    ("power_outage", "X02", "公共楼道照明线路老化停电", "awaiting_signoff", 2, {}),
    ("water_leak", "X03", "屋顶防水层破损，顶楼住户漏水", "awaiting_signoff", 9, {}),
    ("fire_lane", "X05", "消防通道长期被私家车占用", "awaiting_signoff", 1, {"onsite": True}),
    ("pets", "X06", "小区内有人遛狗不牵绳", "awaiting_signoff", 4, {"onsite": True}),
    ("garbage", "X09", "建筑垃圾堆放在绿化带", "closed", 15, {"satisfaction": "satisfied"}),
    ("lighting", "X10", "单元门口感应灯不亮", "closed", 20, {"satisfaction": "basic"}),
    ("drainage", "X07", "雨水井盖缺失", "closed", 8, {"satisfaction": "satisfied"}),
    ("lift_fault", "X01", "1栋电梯门关不严", "closed", 25, {"satisfaction": "satisfied", "reopened": True}),
    ("noise", "X08", "广场舞音响声音过大", "closed", 11, {"onsite": True, "satisfaction": "basic"}),
    ("security", "X02", "小区围墙破损，有陌生人翻入", "closed", 18, {"satisfaction": "satisfied"}),
    ("green_space", "X03", "草坪长期无人修剪", "closed", 30, {"auto_close": True}),
    ("other", "X04", "咨询物业费收费标准", "closed", 6, {"invalid": "withdrawn"}),
    ("firm_change", "X01", "业主要求更换物业公司", "closed", 14, {"declined": True}),
    ("water_leak", "X05", "地下室积水", "firm_processing", 7, {"sent_back": True}),
)


def seed_demo_cases(users) -> int:
    """Create the demo cases unless cases already exist. Returns the number of cases present."""
    existing = db.session.scalar(select(func.count()).select_from(Case))
    if existing:
        return existing
    rng = random.Random(2026)
    now = utcnow()
    for index, (category, compound, description, target, days_ago, extra) in enumerate(SCENARIOS):
        grid, firm, branch, clerk = HANDLERS[compound]
        start = now - timedelta(days=days_ago)
        step = timedelta(hours=max(0.2, days_ago * 24 / 8))
        at = iter(start + step * i for i in range(1, 20))
        case = services.register_case(
            services.Intake(
                category=category,
                description=description,
                compound=compound,
                building=f"{rng.randint(1, 5)}栋",
                unit=f"{rng.randint(1, 3)}单元{rng.randint(1, 18)}0{rng.randint(1, 4)}",
                urgency=extra.get("urgency"),
                channel="phone" if index % 3 == 0 else "window",
                resident_name=RESIDENTS[index % len(RESIDENTS)],
                resident_phone=f"139{rng.randint(10000000, 99999999)}",
            ),
            users[clerk],
            now=start,
        )
        _drive(case, target, extra, users, grid, firm, branch, clerk, at)
    # one request from an Open311 client that no one has routed yet
    services.register_case(
        services.Intake(
            category="lighting",
            description="秋浦西路人行道路灯不亮（来自市民随手拍）",
            channel="open311",
            address_text="秋浦西路88号附近",
        ),
        SYSTEM_ACTOR,
        now=now - timedelta(hours=3),
    )
    db.session.flush()
    seed_history(users, rng, now)
    return db.session.scalar(select(func.count()).select_from(Case))


HISTORY_MONTHS = 3
HISTORY_PER_MONTH = 18
HISTORY_MATTERS = (
    ("water_leak", "卫生间楼板渗水至楼下"),
    ("lift_fault", "电梯运行时有异响"),
    ("garbage", "垃圾分类亭周边卫生差"),
    ("lighting", "楼道声控灯损坏"),
    ("drainage", "雨后小区道路积水"),
    ("green_space", "绿化带杂草丛生"),
    ("facilities", "健身器材松动"),
    ("security", "单元门禁损坏"),
)


def seed_history(users, rng: random.Random, now) -> None:
    """Closed cases in each of the last three months, handled on time or late, answered satisfied or not,
    so the dashboard's trend, the bulletins and the firm ratings have months to show; then the months
    that are over are rated (frozen) and the figures' rollup is built."""
    from app.reports import indicators, rating, rollup
    from app.sla.services import load_calendar, run_sweep

    calendar = load_calendar()
    current = indicators.current_month(now)
    months = indicators.months_back(indicators.previous_month(current), HISTORY_MONTHS)
    compounds = list(HANDLERS)
    plans = []
    for month in months:
        span = (month.end - month.start).total_seconds()
        for n in range(HISTORY_PER_MONTH):
            offset = span * (n + 0.5) / (HISTORY_PER_MONTH + 1)
            plans.append((month.start + timedelta(seconds=offset), n))
    plans.sort()
    for start, n in plans:
        start = calendar.add_business_minutes(start, 0)  # a working moment
        if start >= now - timedelta(days=3):
            continue
        compound = compounds[rng.randrange(len(compounds))]
        grid, firm, _branch, clerk = HANDLERS[compound]
        category, description = HISTORY_MATTERS[rng.randrange(len(HISTORY_MATTERS))]
        case = services.register_case(
            services.Intake(
                category=category,
                description=description,
                compound=compound,
                channel=("window", "phone", "hotline")[n % 3],
                resident_name=RESIDENTS[rng.randrange(len(RESIDENTS))],
                resident_phone=f"138{rng.randint(10000000, 99999999)}",
            ),
            users[clerk],
            now=start,
        )
        slow_firm = firm == "firm2" and rng.random() < 0.5  # one firm is slower
        slow_grid = rng.random() < 0.15
        t = calendar.add_business_minutes(start, 300 if slow_grid else rng.randint(15, 90))
        if slow_grid:
            run_sweep(now=t)
        services.fire(case, "grid_accept", users[grid], now=t)
        t = calendar.add_business_minutes(t, rng.randint(30, 240))
        services.fire(case, "dispatch_to_firm", users[grid], inputs={"note": "已现场核实"}, now=t)
        t = calendar.add_business_minutes(t, 360 if slow_firm else rng.randint(20, 180))
        if slow_firm:
            run_sweep(now=t)
        services.fire(case, "firm_accept", users[firm], now=t)
        t = calendar.add_business_minutes(t, rng.randint(120, 2400 if slow_firm else 1000))
        services.fire(case, "firm_complete", users[firm], inputs={"result": "已维修完毕"}, now=t)
        t = calendar.add_business_minutes(t, rng.randint(30, 400))
        roll = rng.random() + (0.15 if slow_firm else 0)
        satisfaction = "satisfied" if roll < 0.7 else "basic" if roll < 0.9 else "unsatisfied"
        recorder = users[clerk] if users[clerk].role == "clerk" else users[grid]
        answer = {"contacted": rng.random() < 0.95, "resolved": satisfaction != "unsatisfied"}
        services.fire(case, "signoff", recorder, inputs={**answer, "satisfaction": satisfaction}, now=t)
        if case.state != "closed":  # sent back: the firm tries again and the resident accepts
            t = calendar.add_business_minutes(t, rng.randint(60, 600))
            services.fire(case, "firm_complete", users[firm], inputs={"result": "返工处理完毕"}, now=t)
            t = calendar.add_business_minutes(t, 60)
            services.fire(
                case,
                "signoff",
                recorder,
                inputs={"contacted": True, "resolved": True, "satisfaction": "basic"},
                now=t,
            )
    db.session.flush()
    for month in months:
        if month.end <= now:
            rating.compute_month(month.label, SYSTEM_ACTOR, now=now)
        rollup.refresh(month.label, now)
    rollup.refresh(current.label, now)


def _drive(case, target, extra, users, grid, firm, branch, clerk, at) -> None:
    fire = services.fire
    if target == "grid_assigned":
        return
    fire(case, "grid_accept", users[grid], now=next(at))
    if target == "grid_handling":
        return
    if case.workflow == "predeliberation":
        fire(case, "refer_to_branch", users[grid], inputs={"note": "属小区党支部先议事项，提请先议"}, now=next(at))
        if target == "branch_review":
            return
        if extra.get("declined"):
            fire(
                case,
                "branch_decline",
                users[branch],
                inputs={"reply": "经支委会先议，更换物业须依法召开业主大会表决，已向业主说明程序"},
                now=next(at),
            )
            return
    if extra.get("invalid"):
        fire(
            case,
            "close_invalid",
            users[grid],
            inputs={"reason": extra["invalid"], "note": "已电话解答，居民撤回"},
            now=next(at),
        )
        return
    if extra.get("onsite"):
        fire(case, "resolve_on_site", users[grid], inputs={"result": "已到现场协调处理"}, now=next(at))
    else:
        fire(case, "dispatch_to_firm", users[grid], inputs={"note": "已现场核实情况属实"}, now=next(at))
        if target == "firm_dispatched":
            return
        fire(case, "firm_accept", users[firm], now=next(at))
        if target == "firm_processing" and not extra.get("sent_back"):
            return
        if target == "on_hold":
            fire(
                case,
                "hold",
                users[firm],
                inputs={"reason": "waiting_parts", "note": "配件已向厂家订购，预计一周到货"},
                now=next(at),
            )
            return
        fire(case, "firm_complete", users[firm], inputs={"result": "已安排维修人员处理完毕"}, now=next(at))
        if extra.get("sent_back"):
            fire(
                case,
                "signoff",
                users[clerk] if users[clerk].role == "clerk" else users[grid],
                inputs={"contacted": True, "resolved": False, "satisfaction": "unsatisfied", "comment": "积水仍未排干"},
                now=next(at),
            )
            return
    if target == "awaiting_signoff":
        return
    if extra.get("auto_close"):
        fire(case, "auto_close", SYSTEM_ACTOR, now=next(at))
        return
    recorder = users[clerk] if users[clerk].role == "clerk" else users[grid]
    fire(
        case,
        "signoff",
        recorder,
        inputs={"contacted": True, "resolved": True, "satisfaction": extra.get("satisfaction", "satisfied")},
        now=next(at),
    )
    if extra.get("reopened"):
        fire(case, "reopen", users["supervisor1"], inputs={"reason": "居民再次来电反映问题复发"}, now=next(at))
        fire(case, "dispatch_to_firm", users[grid], now=next(at))
        fire(case, "firm_accept", users[firm], now=next(at))
        fire(case, "firm_complete", users[firm], inputs={"result": "更换门机控制板"}, now=next(at))
        fire(
            case,
            "signoff",
            recorder,
            inputs={"contacted": True, "resolved": True, "satisfaction": "satisfied"},
            now=next(at),
        )
