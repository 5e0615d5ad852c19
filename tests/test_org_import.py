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


# ------------------------------------------------------------------------------ the upload page


def _upload(client, auth, text, name="org.csv", dry_run=True, encoding="utf-8"):
    import io

    from tests.conftest import csrf_token

    data = {"csrf_token": csrf_token(client, "/admin/org-import/"), "file": (io.BytesIO(text.encode(encoding)), name)}
    if dry_run:
        data["dry_run"] = "y"
    return client.post("/admin/org-import/", data=data, content_type="multipart/form-data")


def test_upload_page_dry_run_then_import(client, auth, app):
    import re

    auth.login("admin")
    page = client.get("/admin/org-import/").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    assert re.search(r'<input checked[^>]*name="dry_run" type="checkbox"', page)  # a dry run unless unticked
    with app.app_context():
        before = _count(Compound)
    dry = _upload(client, auth, GOOD_CSV)
    body = dry.get_data(as_text=True)
    assert dry.status_code == 200 and 'id="import-result" data-dry-run="1"' in body
    assert re.search(r'<td>小区</td><td data-created="3">', body)  # would create 3 compounds
    with app.app_context():
        assert _count(Compound) == before  # a dry run writes nothing
    done = _upload(client, auth, GOOD_CSV, dry_run=False)
    assert done.status_code == 200 and 'data-dry-run="0"' in done.get_data(as_text=True)
    with app.app_context():
        assert _count(Compound) == before + 3
        assert db.session.scalar(select(Compound).where(Compound.name == "滨江花园")).grid.name == "滨江第一网格"
        from app.audit.models import AuditEvent

        assert db.session.scalar(select(AuditEvent).where(AuditEvent.action == "org.imported")) is not None


def test_upload_page_shows_row_errors_and_writes_nothing(client, auth, app):
    auth.login("admin")
    bad = GOOD_CSV + "江口街道,滨江社区,滨江第一网格,新小区,,1栋,某物业,2025-13-01,,\n"
    with app.app_context():
        before = (_count(Compound), _count(PropertyFirm))
    response = _upload(client, auth, bad, dry_run=False)
    body = response.get_data(as_text=True)
    assert response.status_code == 422 and 'id="import-errors"' in body and 'data-row="5"' in body
    with app.app_context():
        assert (_count(Compound), _count(PropertyFirm)) == before  # nothing half-written
    wrong_type = _upload(client, auth, "x", name="org.pdf")
    assert wrong_type.status_code == 422 and ".pdf" in wrong_type.get_data(as_text=True)
    missing = client.post(
        "/admin/org-import/",
        data={
            "csrf_token": __import__("tests.conftest", fromlist=["csrf_token"]).csrf_token(client, "/admin/org-import/")
        },
        content_type="multipart/form-data",
    )
    assert missing.status_code == 422
    headers = _upload(client, auth, "名称,地址\n甲,乙\n")
    assert headers.status_code == 422 and 'data-row="1"' in headers.get_data(as_text=True)


def test_upload_page_is_for_administrators_only(client, auth):
    assert client.get("/admin/org-import/").status_code == 302
    auth.login("supervisor1")
    assert client.get("/admin/org-import/").status_code == 403
