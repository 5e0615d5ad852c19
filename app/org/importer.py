"""Organisation import from CSV or XLSX: one row per compound (or per building).

Columns (header row; Chinese or English names; order free):

======================  ==================  =========================================
English                 中文                meaning
======================  ==================  =========================================
street *                街道 *              street name
community *             社区 *              community name
compound *              小区 *              compound name
grid                    网格                grid name (created in the community)
address                 小区地址 / 地址      compound address
buildings               楼栋                building names, separated by ; ， 、 or ,
firm                    物业公司            property firm name
contract_start          合同开始日期         contract start (YYYY-MM-DD); required with a firm
contract_end            合同结束日期         contract end (YYYY-MM-DD), empty for open-ended
branch                  党支部              party branch name
station                 服务站              the community's service station name
*_code                  *编码               optional codes: street_code, community_code, grid_code,
                                            compound_code, firm_code, branch_code, station_code
======================  ==================  =========================================

Existing records are matched by code when given, else by name within their parent, and reused;
new ones are created. The whole file is checked first: one bad row means nothing is imported, and
every error names its row number (the header is row 1).
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

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

HEADER_ALIASES = {
    "street": ("street", "街道"),
    "street_code": ("street_code", "街道编码"),
    "community": ("community", "社区"),
    "community_code": ("community_code", "社区编码"),
    "grid": ("grid", "网格"),
    "grid_code": ("grid_code", "网格编码"),
    "compound": ("compound", "小区"),
    "compound_code": ("compound_code", "小区编码"),
    "address": ("address", "compound_address", "小区地址", "地址"),
    "buildings": ("buildings", "building", "楼栋"),
    "firm": ("firm", "property_firm", "物业公司", "物业服务企业", "物业"),
    "firm_code": ("firm_code", "物业编码", "物业公司编码"),
    "contract_start": ("contract_start", "合同开始日期", "合同开始"),
    "contract_end": ("contract_end", "合同结束日期", "合同结束"),
    "branch": ("branch", "party_branch", "党支部", "小区党支部"),
    "branch_code": ("branch_code", "党支部编码"),
    "station": ("station", "service_station", "服务站", "党群服务站"),
    "station_code": ("station_code", "服务站编码"),
}
REQUIRED = ("street", "community", "compound")
KIND_LABELS = {
    "street": _l("street"),
    "community": _l("community"),
    "grid": _l("grid"),
    "compound": _l("compound"),
    "station": _l("service station"),
    "branch": _l("party branch"),
    "firm": _l("property firm"),
    "building": _l("building"),
    "contract": _l("contract"),
}
BUILDING_SPLIT = re.compile(r"[;；,，、\n]+")
CODE_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
MAX_NAME = 100


class ImportFailed(Exception):
    """The file cannot be imported; ``errors`` lists ``(row, message)`` pairs. Nothing was written."""

    def __init__(self, errors: list[tuple[int, str]]):
        super().__init__(f"{len(errors)} error(s)")
        self.errors = errors


@dataclass
class ImportReport:
    rows: int = 0
    created: Counter = field(default_factory=Counter)
    reused: Counter = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)


def read_table(path: str | Path) -> list[tuple[int, dict[str, str]]]:
    """Read a CSV (UTF-8 or GB18030) or XLSX file into ``(row_number, {column: text})`` pairs.

    Raises :class:`ImportFailed` for an unreadable file, an unknown extension or missing columns.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        raw_rows = _read_xlsx(path)
    elif suffix in (".csv", ".txt"):
        raw_rows = _read_csv(path)
    else:
        raise ImportFailed([(0, _("Unsupported file type %(suffix)s: use .csv or .xlsx.", suffix=suffix or "-"))])
    if not raw_rows:
        raise ImportFailed([(1, _("The file is empty: the first row must hold the column names."))])
    header = [str(h or "").strip() for h in raw_rows[0]]
    columns: dict[int, str] = {}
    unknown = []
    for index, name in enumerate(header):
        if not name:
            continue
        key = next((k for k, aliases in HEADER_ALIASES.items() if name.lower() in aliases), None)
        if key is None:
            unknown.append(name)
        else:
            columns[index] = key
    missing = [k for k in REQUIRED if k not in columns.values()]
    errors = []
    if missing:
        errors.append(
            (
                1,
                _(
                    "Missing column(s): %(columns)s.",
                    columns=", ".join(f"{k} ({HEADER_ALIASES[k][-1]})" for k in missing),
                ),
            )
        )
    if unknown:
        errors.append((1, _("Unknown column(s): %(columns)s.", columns=", ".join(unknown))))
    if errors:
        raise ImportFailed(errors)
    result = []
    for number, raw in enumerate(raw_rows[1:], start=2):
        values = {key: _cell_text(raw[i]) if i < len(raw) else "" for i, key in columns.items()}
        if any(values.values()):
            result.append((number, values))
    return result


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_csv(path: Path) -> list[list[str]]:
    data = path.read_bytes()
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:  # pragma: no cover - gb18030 decodes any byte string
        raise ImportFailed([(0, _("The file is neither UTF-8 nor GB18030 text."))])
    return [row for row in csv.reader(io.StringIO(text))]


def _read_xlsx(path: Path) -> list[list]:
    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except Exception as error:  # noqa: BLE001 - openpyxl raises many types for broken files
        raise ImportFailed([(0, _("Cannot read the workbook: %(error)s", error=error))]) from None
    try:
        sheet = workbook.worksheets[0]
        return [list(row) for row in sheet.iter_rows(values_only=True)]
    finally:
        workbook.close()


def _parse_date(text: str) -> date:
    text = text.strip().replace("/", "-").replace(".", "-")
    try:
        return date.fromisoformat(text)
    except ValueError:
        match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
        if match:
            return date(*(int(g) for g in match.groups()))
        raise


class _Importer:
    """Creates or reuses records row by row, collecting errors instead of stopping."""

    def __init__(self, report: ImportReport):
        self.report = report
        self.cache: dict[tuple, object] = {}
        self._code_counters: dict[str, int] = {}

    def error(self, row: int, message: str) -> None:
        self.report.errors.append((row, message))

    def _next_code(self, model, prefix: str) -> str:
        count = self._code_counters.get(prefix)
        if count is None:
            count = db.session.scalar(select(func.count()).select_from(model)) or 0
        while True:
            count += 1
            code = f"{prefix}{count:03d}"
            if not db.session.scalar(select(model.id).where(model.code == code)):
                self._code_counters[prefix] = count
                return code

    def _get_or_create(
        self,
        row: int,
        kind: str,
        model,
        name: str,
        code: str,
        prefix: str,
        parent: dict | None = None,
        extra: dict | None = None,
    ):
        """Find by code, else by name (within parent); create when absent. Returns None on error."""
        label = str(KIND_LABELS[kind])
        if len(name) > MAX_NAME:
            self.error(row, _("The %(kind)s name is longer than %(max)d characters.", kind=label, max=MAX_NAME))
            return None
        if code and not CODE_RE.match(code):
            self.error(
                row,
                _(
                    "The %(kind)s code %(code)s may only hold letters, digits, dashes and underscores.",
                    kind=label,
                    code=code,
                ),
            )
            return None
        parent = parent or {}
        key = (kind, code or None, name, tuple(sorted((k, getattr(v, "id", id(v))) for k, v in parent.items())))
        if key in self.cache:
            return self.cache[key]
        obj = None
        if code:
            obj = db.session.scalar(select(model).where(model.code == code))
            if obj is not None and obj.name != name:
                self.error(
                    row,
                    _(
                        "The %(kind)s code %(code)s belongs to %(other)s, not %(name)s.",
                        kind=label,
                        code=code,
                        other=obj.name,
                        name=name,
                    ),
                )
                return None
        if obj is None:
            query = select(model).where(model.name == name)
            for attr, value in parent.items():
                query = query.where(getattr(model, f"{attr}_id") == value.id)
            obj = db.session.scalar(query)
        if obj is not None:
            for attr, value in parent.items():
                if getattr(obj, f"{attr}_id") != value.id:
                    self.error(
                        row,
                        _(
                            "The %(kind)s %(name)s already belongs to another %(parent)s.",
                            kind=label,
                            name=name,
                            parent=str(KIND_LABELS[attr]),
                        ),
                    )
                    return None
            self.report.reused[kind] += 1
        else:
            obj = model(name=name, code=code or self._next_code(model, prefix), **parent, **(extra or {}))
            db.session.add(obj)
            db.session.flush()
            self.report.created[kind] += 1
        self.cache[key] = obj
        return obj

    def import_row(self, row: int, values: dict[str, str]) -> None:
        for required in REQUIRED:
            if not values.get(required):
                self.error(row, _("%(column)s is empty.", column=f"{required} ({HEADER_ALIASES[required][-1]})"))
        if any(not values.get(r) for r in REQUIRED):
            return
        start = end = None
        if values.get("firm"):
            if not values.get("contract_start"):
                self.error(row, _("contract_start (合同开始日期) is required when a firm is given."))
                return
            try:
                start = _parse_date(values["contract_start"])
                end = _parse_date(values["contract_end"]) if values.get("contract_end") else None
            except ValueError:
                self.error(row, _("Contract dates must look like 2026-01-31."))
                return
            if end is not None and end < start:
                self.error(row, _("contract_end is before contract_start."))
                return
        elif values.get("contract_start") or values.get("contract_end"):
            self.error(row, _("Contract dates are given without a firm."))
            return

        street = self._get_or_create(row, "street", Street, values["street"], values.get("street_code", ""), "S")
        if street is None:
            return
        community = self._get_or_create(
            row, "community", Community, values["community"], values.get("community_code", ""), "C", {"street": street}
        )
        if community is None:
            return
        grid = None
        if values.get("grid"):
            grid = self._get_or_create(
                row, "grid", Grid, values["grid"], values.get("grid_code", ""), "G", {"community": community}
            )
            if grid is None:
                return
        if values.get("station"):
            station = self._get_or_create(
                row,
                "station",
                ServiceStation,
                values["station"],
                values.get("station_code", ""),
                "ST",
                {"community": community},
            )
            if station is None:
                return
        compound = self._get_or_create(
            row,
            "compound",
            Compound,
            values["compound"],
            values.get("compound_code", ""),
            "X",
            {"community": community},
        )
        if compound is None:
            return
        if grid is not None:
            if compound.grid_id not in (None, grid.id):
                self.error(row, _("The compound %(name)s is already in another grid.", name=compound.name))
                return
            compound.grid = grid
        if values.get("address"):
            compound.address = values["address"][:200]
        for building_name in (b.strip() for b in BUILDING_SPLIT.split(values.get("buildings", ""))):
            if not building_name:
                continue
            if len(building_name) > 50:
                self.error(row, _("The building name %(name)s… is longer than 50 characters.", name=building_name[:20]))
                return
            exists = db.session.scalar(
                select(Building).where(Building.compound_id == compound.id, Building.name == building_name)
            )
            if exists is None:
                db.session.add(Building(compound=compound, name=building_name))
                self.report.created["building"] += 1
        if values.get("branch"):
            branch = db.session.scalar(select(PartyBranch).where(PartyBranch.compound_id == compound.id))
            if branch is None:
                branch = self._get_or_create(
                    row,
                    "branch",
                    PartyBranch,
                    values["branch"],
                    values.get("branch_code", ""),
                    "B",
                    {"compound": compound},
                )
                if branch is None:
                    return
            elif branch.name != values["branch"]:
                self.error(
                    row,
                    _(
                        "The compound %(name)s already has the branch %(branch)s.",
                        name=compound.name,
                        branch=branch.name,
                    ),
                )
                return
        if values.get("firm"):
            firm = self._get_or_create(row, "firm", PropertyFirm, values["firm"], values.get("firm_code", ""), "F")
            if firm is None:
                return
            db.session.flush()
            contracts = db.session.scalars(select(FirmContract).where(FirmContract.compound_id == compound.id)).all()
            same = [c for c in contracts if c.firm_id == firm.id and c.start_date == start]
            if same:
                if same[0].end_date != end:
                    same[0].end_date = end
                return
            far = date.max
            clash = [c for c in contracts if c.start_date <= (end or far) and start <= (c.end_date or far)]
            if clash:
                self.error(
                    row,
                    _(
                        "The compound %(name)s already has a contract overlapping %(period)s.",
                        name=compound.name,
                        period=f"{start.isoformat()}–{end.isoformat() if end else '…'}",
                    ),
                )
                return
            db.session.add(FirmContract(compound=compound, firm=firm, start_date=start, end_date=end))
            self.report.created["contract"] += 1


def import_rows(
    rows: Iterable[tuple[int, dict[str, str]]], progress: Callable[[int], None] | None = None
) -> ImportReport:
    """Import parsed rows in the current transaction.

    Raises :class:`ImportFailed` (after rolling back everything this call wrote) when any row is
    bad. The caller commits on success, or rolls back for a dry run.
    """
    report = ImportReport()
    importer = _Importer(report)
    savepoint = db.session.begin_nested()
    try:
        for number, values in rows:
            report.rows += 1
            importer.import_row(number, values)
            if progress:
                progress(1)
        db.session.flush()
    except Exception:
        savepoint.rollback()
        raise
    if report.errors:
        savepoint.rollback()
        raise ImportFailed(sorted(report.errors))
    savepoint.commit()
    return report
