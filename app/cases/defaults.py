"""Reference data every installation starts with: the category list."""

from __future__ import annotations

from sqlalchemy import select

from app.cases.models import Category
from app.extensions import db

# code, 中文, English, default urgency, workflow
DEFAULT_CATEGORIES: tuple[tuple[str, str, str, str, str], ...] = (
    ("water_leak", "漏水渗水", "Water leak", "normal", "standard"),
    ("drainage", "下水道堵塞", "Drainage blockage", "normal", "standard"),
    ("water_outage", "停水", "Water outage", "urgent", "standard"),
    ("lift_fault", "电梯故障", "Lift fault", "normal", "standard"),
    ("lift_entrapment", "电梯困人", "Lift entrapment", "urgent", "standard"),
    ("power_outage", "公共区域停电", "Power outage in common areas", "urgent", "standard"),
    ("gas_leak", "燃气泄漏", "Gas leak", "urgent", "standard"),
    ("lighting", "公共照明损坏", "Broken public lighting", "normal", "standard"),
    ("garbage", "垃圾未及时清运", "Garbage not collected", "normal", "standard"),
    ("green_space", "绿化养护", "Green space upkeep", "normal", "standard"),
    ("fire_lane", "停车及消防通道占用", "Parking / blocked fire lane", "normal", "onsite"),
    ("noise", "噪音扰民", "Noise", "normal", "onsite"),
    ("pets", "宠物管理", "Pets", "normal", "onsite"),
    ("facilities", "公共设施损坏", "Damaged public facilities", "normal", "standard"),
    ("security", "治安及安全隐患", "Security and safety hazard", "urgent", "standard"),
    ("maintenance_fund", "维修资金使用", "Use of the maintenance fund", "normal", "predeliberation"),
    ("firm_change", "选聘或更换物业企业", "Choosing or changing the property firm", "normal", "predeliberation"),
    ("ad_income", "广告收益分配", "Advertising income distribution", "normal", "predeliberation"),
    ("other", "其他", "Other", "normal", "onsite"),
)


#: extra questions some categories ask (also Open311 service attributes)
DEFAULT_ATTRIBUTES = {
    "lift_entrapment": [
        {
            "code": "people_trapped",
            "datatype": "number",
            "required": True,
            "order": 1,
            "description_zh": "被困人数",
            "description_en": "How many people are trapped",
        },
        {
            "code": "lift_number",
            "datatype": "string",
            "required": False,
            "order": 2,
            "description_zh": "电梯编号（轿厢内铭牌）",
            "description_en": "Lift number (plate inside the car)",
        },
    ],
    "water_leak": [
        {
            "code": "still_leaking",
            "datatype": "singlevaluelist",
            "required": False,
            "order": 1,
            "description_zh": "是否仍在漏水",
            "description_en": "Is water still leaking",
            "values": [{"key": "yes", "name": "是 / yes"}, {"key": "no", "name": "否 / no"}],
        },
    ],
}


def ensure_default_categories() -> int:
    """Create the default categories that are missing (matched by code). Returns how many were added."""
    existing = {category.code: category for category in db.session.scalars(select(Category))}
    added = 0
    for order, (code, zh, en, urgency, workflow) in enumerate(DEFAULT_CATEGORIES, start=1):
        if code in existing:
            if existing[code].attributes is None and code in DEFAULT_ATTRIBUTES:
                existing[code].attributes = DEFAULT_ATTRIBUTES[code]
            continue
        db.session.add(
            Category(
                code=code,
                name_zh=zh,
                name_en=en,
                default_urgency=urgency,
                workflow=workflow,
                active=True,
                sort_order=order * 10,
                attributes=DEFAULT_ATTRIBUTES.get(code),
            )
        )
        added += 1
    db.session.flush()
    return added
