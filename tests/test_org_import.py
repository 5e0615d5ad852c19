"""``flask org-import``: good files, bad rows, dry runs, XLSX and Chinese headers."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.org.models import Building, Community, Compound, FirmContract, Grid, PartyBranch, PropertyFirm, Street

GOOD_CSV = """街道,社区,网格,小区,小区地址,楼栋,物业公司,合同开始日期,合同结束日期,党支部
江口街道,滨江社区,滨江第一网格,滨江花园,滨江路1号,1栋;2栋;3栋,池州滨江物业有限公司,2025-01-01,2027-12-31,滨江花园党支部
江口街道,滨江社区,滨江第一网格,江景苑,滨江路9号,A座、B座,池州滨江物业有限公司,2025-03-01,,
江口街道,河西社区,河西网格,河西新村,,1栋,,,,
"""


def _count(model):
    return db.session.scalar(select(func.count()).select_from(model))


def _write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def test_good_csv_imports_everything(runner, app, tmp_path):
    path = _write(tmp_path, "org.csv", GOOD_CSV)
    result = runner.invoke(args=["org-import", str(path)])
    assert result.exit_code == 0, result.output
    assert "Imported 3 rows" in result.output
    with app.app_context():
        street = db.session.scalar(select(Street).where(Street.name == "江口街道"))
        assert {c.name for c in street.communities} == {"滨江社区", "河西社区"}
        garden = db.session.scalar(select(Compound).where(Compound.name == "滨江花园"))
        assert garden.grid.name == "滨江第一网格" and garden.address == "滨江路1号"
        assert sorted(b.name for b in garden.buildings) == ["1栋", "2栋", "3栋"]
        assert garden.branch.name == "滨江花园党支部"
        contract = garden.contracts[0]
        assert contract.firm.name == "池州滨江物业有限公司" and str(contract.end_date) == "2027-12-31"
        view = db.session.scalar(select(Compound).where(Compound.name == "江景苑"))
        assert sorted(b.name for b in view.buildings) == ["A座", "B座"]
        assert view.contracts[0].end_date is None
        # the same firm is reused, not created twice
        assert (
            db.session.scalar(
                select(func.count()).select_from(PropertyFirm).where(PropertyFirm.name == "池州滨江物业有限公司")
            )
            == 1
        )
    # importing the same file again changes nothing
    with app.app_context():
        before = (_count(Compound), _count(Building), _count(FirmContract))
    again = runner.invoke(args=["org-import", str(path)])
    assert again.exit_code == 0
    with app.app_context():
        assert (_count(Compound), _count(Building), _count(FirmContract)) == before


def test_bad_row_imports_nothing_and_names_the_row(runner, app, tmp_path):
    bad = GOOD_CSV + "江口街道,河西社区,河西网格,,,,,,,\n江口街道,河西社区,,河西二村,,,某物业,2025-13-01,,\n"
    path = _write(tmp_path, "bad.csv", bad)
    with app.app_context():
        before = (_count(Street), _count(Community), _count(Compound), _count(Grid), _count(PartyBranch))
    result = runner.invoke(args=["org-import", str(path)])
    assert result.exit_code != 0
    assert "row 5" in result.output and "compound" in result.output
    assert "row 6" in result.output and "2026-01-31" in result.output
    assert "nothing was imported" in result.output
    with app.app_context():
        after = (_count(Street), _count(Community), _count(Compound), _count(Grid), _count(PartyBranch))
        assert after == before
        assert db.session.scalar(select(Street).where(Street.name == "江口街道")) is None


def test_dry_run_writes_nothing(runner, app, tmp_path):
    path = _write(tmp_path, "org.csv", GOOD_CSV)
    result = runner.invoke(args=["org-import", str(path), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "Dry run" in result.output and "compound +3" in result.output
    with app.app_context():
        assert db.session.scalar(select(Compound).where(Compound.name == "滨江花园")) is None


def test_missing_columns_are_reported(runner, tmp_path):
    path = _write(tmp_path, "cols.csv", "街道,小区\n秋浦街道,某小区\n")
    result = runner.invoke(args=["org-import", str(path)])
    assert result.exit_code != 0
    assert "row 1" in result.output and "community" in result.output


def test_gb18030_csv_from_excel_is_read(runner, app, tmp_path):
    path = _write(tmp_path, "gbk.csv", GOOD_CSV, encoding="gb18030")
    result = runner.invoke(args=["org-import", str(path)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(Compound).where(Compound.name == "河西新村")) is not None


def test_xlsx_with_english_headers(runner, app, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["street", "community", "grid", "compound", "buildings", "firm", "contract_start"])
    sheet.append(
        ["秋浦街道", "杏花村社区", "杏花村第一网格", "新建小区", "1栋,2栋", "池州红帆物业服务有限公司", "2026-01-01"]
    )
    path = tmp_path / "org.xlsx"
    workbook.save(path)
    result = runner.invoke(args=["org-import", str(path)])
    assert result.exit_code == 0, result.output
    with app.app_context():
        compound = db.session.scalar(select(Compound).where(Compound.name == "新建小区"))
        assert compound.community.code == "C01" and compound.grid.code == "G01"
        assert compound.contracts[0].firm.code == "F01"  # existing firm reused


def test_overlapping_contract_is_refused(runner, tmp_path):
    text = "街道,社区,小区,物业公司,合同开始日期\n秋浦街道,杏花村社区,阳光花园,池州安居物业管理有限公司,2026-06-01\n"
    result = runner.invoke(args=["org-import", str(_write(tmp_path, "c.csv", text))])
    assert result.exit_code != 0
    assert "row 2" in result.output and "阳光花园" in result.output


def test_unsupported_file_type(runner, tmp_path):
    result = runner.invoke(args=["org-import", str(_write(tmp_path, "org.json", "{}"))])
    assert result.exit_code != 0 and ".xlsx" in result.output
