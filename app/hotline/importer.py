"""Read the 12345 platform's work-order exports and register each work order as a case.

The platform's exports differ between cities and years: XLSX, legacy ``.xls``, CSV in UTF-8 or GB18030,
a title or notes above the header row, and the same column under several names. Each row goes through
the same intake service as a clerk's registration (channel ``hotline``); the work-order number is kept
as the case's external reference (``12345:<number>``), so importing a file again creates nothing.
Rows that cannot be placed (unknown category or compound, outside the importer's area, invalid data)
are reported with their row number and reason; the rest are imported.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from types import SimpleNamespace

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.auth import roles
from app.auth.permissions import in_scope
from app.cases.models import Case, Category
from app.cases.services import MOBILE_RE, FieldErrors, Intake, register_case
from app.extensions import db
from app.hotline.models import HotlineCategoryMap
from app.org.models import Community, Compound

EXTERNAL_PREFIX = "12345:"
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ROWS = 50_000
HEADER_SCAN_ROWS = 20
#: our field → the column names the platform uses for it (compared without spaces, case-insensitive)
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "order_no": ("工单编号", "诉求编号", "工单号", "工单编码", "编号"),
    "category1": ("问题分类", "一级分类", "诉求分类", "问题类别"),
    "category2": ("二级分类",),
    "category3": ("三级分类",),
    "title": ("标题", "诉求标题", "工单标题"),
    "content": ("主要内容", "诉求内容", "问题描述", "反映内容", "来电内容"),
    "caller": ("来电人", "诉求人", "联系人", "来电人姓名"),
    "phone": ("来电人电话", "联系电话", "来电号码", "诉求人电话", "联系方式"),
    "district": ("被反映区", "所属区", "区县"),
    "street": ("被反映街乡镇", "街乡镇", "所属街道", "街道"),
    "community": ("村/社区", "村（社区）", "社区", "所属社区"),
    "compound": ("小区点位", "小区", "点位", "小区名称", "地点"),
    "called_at": ("来电时间", "受理时间", "登记时间"),
    "unit": ("承办单位", "主办单位", "办理单位"),
    "nature": ("工单性质", "诉求性质", "诉求类型"),
    "urgency": ("紧急程度", "缓急程度"),
    "address": ("详细地址", "地址"),
}
URGENT_WORDS = ("紧急", "特急", "加急", "urgent")
LEVEL_SEPARATORS = re.compile(r"[/>＞→|｜\\]+")


class HotlineFileError(ValueError):
    """The file as a whole cannot be read (type, encoding, no header row)."""


@dataclass
class RowResult:
    row: int
    order_no: str
    ref: str | None = None
    reason: str | None = None


@dataclass
class ImportReport:
    rows: int = 0
    created: list[RowResult] = field(default_factory=list)
    skipped: list[RowResult] = field(default_factory=list)
    errors: list[RowResult] = field(default_factory=list)
    header_row: int = 0


def _norm(name) -> str:
    return re.sub(r"[\s:：*]", "", str(name or "")).lower()


_ALIAS_INDEX = {_norm(alias): key for key, aliases in COLUMN_ALIASES.items() for alias in aliases}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_rows(data: bytes, filename: str) -> list[list[str]]:
    """All rows of the first sheet (or the CSV) as text. Raises :class:`HotlineFileError`."""
    if len(data) > MAX_FILE_BYTES:
        raise HotlineFileError(_("The file is larger than 20 MB; split it and import the parts."))
    suffix = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if suffix in ("xlsx", "xlsm"):
        return _read_xlsx(data)
    if suffix == "xls":
        return _read_xls(data)
    if suffix in ("csv", "txt"):
        return _read_csv(data)
    raise HotlineFileError(_("Unsupported file type: use .xlsx, .xls or .csv."))


def _read_xlsx(data: bytes) -> list[list[str]]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:  # noqa: BLE001 - openpyxl raises many kinds for a damaged file
        raise HotlineFileError(_("The file is not a readable XLSX workbook.")) from None
    try:
        sheet = workbook.worksheets[0]
        return [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _read_xls(data: bytes) -> list[list[str]]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data)
    except Exception:  # noqa: BLE001 - xlrd raises XLRDError, CompDocError, struct errors …
        raise HotlineFileError(_("The file is not a readable .xls workbook.")) from None
    sheet = book.sheet_by_index(0)
    rows = []
    for r in range(sheet.nrows):
        row = []
        for c in range(sheet.ncols):
            cell = sheet.cell(r, c)
            if cell.ctype == xlrd.XL_CELL_DATE:
                row.append(_text(xlrd.xldate_as_datetime(cell.value, book.datemode)))
            else:
                row.append(_text(cell.value))
        rows.append(row)
    return rows


def _read_csv(data: bytes) -> list[list[str]]:
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise HotlineFileError(_("The CSV file is neither UTF-8 nor GB18030 text."))
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text))]


def find_header(rows: list[list[str]]) -> tuple[int, dict[int, str]]:
    """The header row (0-based) below any title or notes rows, and column index → field.

    Raises :class:`HotlineFileError` when no row within the first 20 names the work-order number column.
    """
    for index, row in enumerate(rows[:HEADER_SCAN_ROWS]):
        columns: dict[int, str] = {}
        for position, name in enumerate(row):
            key = _ALIAS_INDEX.get(_norm(name))
            if key is not None and key not in columns.values():
                columns[position] = key
        if "order_no" in columns.values() and len(columns) >= 3:
            return index, columns
    raise HotlineFileError(
        _("No header row found: one of the first 20 rows must name the columns, including 工单编号 (or 诉求编号).")
    )


def category_for(levels: list[str], mapping: dict[str, HotlineCategoryMap], by_name: dict[str, Category]):
    """Our category (and urgency) for the platform's category levels, most specific first; None if unknown."""
    levels = [level for level in levels if level]
    candidates = []
    for size in range(len(levels), 0, -1):
        candidates.append("/".join(levels[:size]))
    candidates.extend(reversed(levels))
    for candidate in candidates:
        row = mapping.get(_norm(candidate))
        if row is not None:
            return row.category, row.urgency
    for level in reversed(levels):
        category = by_name.get(_norm(level))
        if category is not None:
            return category, None
    return None, None


def _compound(values: dict[str, str], compounds: dict[str, list[Compound]]) -> tuple[Compound | None, str | None]:
    name = values.get("compound", "")
    if not name:
        return None, _("No compound (小区点位) given.")
    found = compounds.get(_norm(name), [])
    community = values.get("community", "")
    if len(found) > 1 and community:
        found = [c for c in found if _norm(c.community.name) == _norm(community)]
    if not found:
        return None, _("Unknown compound %(name)s: add it to the organisation data or correct the row.", name=name)
    if len(found) > 1:
        return None, _("Compound %(name)s exists in several communities: give 村/社区.", name=name)
    return found[0], None


def _may_import_into(actor, compound: Compound) -> bool:
    role = getattr(actor, "role", None)
    if role not in (roles.SUPERVISOR, roles.ADMIN):
        return role == "system"
    place = SimpleNamespace(
        community_id=compound.community_id,
        street_id=compound.community.street_id,
        grid_id=compound.grid_id,
        firm_id=None,
        branch_id=None,
    )
    return in_scope(actor, place)


def import_work_orders(
    data: bytes,
    filename: str,
    actor,
    *,
    now: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Register a case for every new work order in the file; flushes, never commits (the edge commits,
    or rolls back for a dry run). Rows already imported are skipped; rows that cannot be placed are
    reported. Raises :class:`HotlineFileError` when the file itself cannot be read.
    """
    rows = read_rows(data, filename)
    header_index, columns = find_header(rows)
    body = rows[header_index + 1 :]
    if len(body) > MAX_ROWS:
        raise HotlineFileError(_("More than %(n)d rows; split the file.", n=MAX_ROWS))
    report = ImportReport(header_row=header_index + 1)
    mapping = {_norm(m.source): m for m in db.session.scalars(select(HotlineCategoryMap))}
    categories = {_norm(c.name_zh): c for c in db.session.scalars(select(Category).where(Category.active.is_(True)))}
    compounds: dict[str, list[Compound]] = {}
    for compound in db.session.scalars(select(Compound).join(Community)):
        compounds.setdefault(_norm(compound.name), []).append(compound)
        compounds.setdefault(_norm(compound.code), []).append(compound)
    seen: dict[str, int] = {}
    for offset, raw in enumerate(body):
        number = header_index + 2 + offset  # the row number people see in the spreadsheet
        if progress is not None:
            progress(1)
        values = {key: (raw[i].strip() if i < len(raw) and raw[i] else "") for i, key in columns.items()}
        if not any(values.values()):
            continue
        report.rows += 1
        order_no = values.get("order_no", "")
        result = RowResult(number, order_no)
        if not order_no:
            result.reason = _("No work-order number (工单编号).")
            report.errors.append(result)
            continue
        if len(order_no) > 58:
            result.reason = _("The work-order number is longer than 58 characters.")
            report.errors.append(result)
            continue
        if order_no in seen:
            result.reason = _("Work-order number %(no)s also on row %(row)d.", no=order_no, row=seen[order_no])
            report.errors.append(result)
            continue
        seen[order_no] = number
        existing = db.session.scalar(select(Case.ref).where(Case.external_ref == EXTERNAL_PREFIX + order_no))
        if existing is not None:
            result.ref = existing
            result.reason = _("Already imported as case %(ref)s.", ref=existing)
            report.skipped.append(result)
            continue
        levels = [values.get("category1", ""), values.get("category2", ""), values.get("category3", "")]
        if not levels[1] and not levels[2]:
            # some exports put the whole path in one cell: 城乡建设/物业管理/电梯故障 or 城乡建设>物业管理>电梯故障
            levels = [part.strip() for part in LEVEL_SEPARATORS.split(levels[0]) if part.strip()] or levels
        category, mapped_urgency = category_for(levels, mapping, categories)
        if category is None:
            path = " / ".join(level for level in levels if level) or "-"
            result.reason = _(
                "Unknown category %(path)s: add it to the 12345 category mapping (administration).", path=path
            )
            report.errors.append(result)
            continue
        compound, problem = _compound(values, compounds)
        if compound is None:
            result.reason = problem
            report.errors.append(result)
            continue
        if not _may_import_into(actor, compound):
            result.reason = _("Compound %(name)s is outside your area.", name=compound.name)
            report.errors.append(result)
            continue
        try:
            with db.session.begin_nested():
                case = register_case(_intake(values, category, mapped_urgency, compound), actor, now=now)
        except FieldErrors as error:
            result.reason = "; ".join(str(message) for message in error.errors.values())
            report.errors.append(result)
            continue
        except IntegrityError:
            # another import registered the same work order at the same moment (unique external reference)
            result.reason = _("Imported at the same moment by someone else; nothing was added.")
            report.skipped.append(result)
            continue
        result.ref = case.ref
        report.created.append(result)
    return report


def _intake(values: dict[str, str], category: Category, urgency: str | None, compound: Compound) -> Intake:
    title, content = values.get("title", ""), values.get("content", "")
    description = f"【{title}】{content}" if title and content and title not in content else (content or title)
    if values.get("urgency") and any(word in values["urgency"].lower() for word in URGENT_WORDS):
        urgency = "urgent"
    phone = re.sub(r"[\s-]", "", values.get("phone", ""))
    if phone.startswith("+86"):
        phone = phone[3:]
    extra = {
        key: values[key]
        for key in ("order_no", "called_at", "unit", "nature", "district", "street", "community", "title")
        if values.get(key)
    }
    if phone and not MOBILE_RE.match(phone):
        extra["caller_phone"] = values["phone"]  # a landline: kept for the follow-up call, not for SMS
        phone = ""
    return Intake(
        category=category.id,
        description=description,
        channel="hotline",
        compound=compound.id,
        urgency=urgency,
        resident_name=values.get("caller", "")[:50] or None,
        resident_phone=phone or None,
        address_text=values.get("address") or None,
        extra={"12345": extra},
        external_ref=EXTERNAL_PREFIX + values["order_no"],
    )
