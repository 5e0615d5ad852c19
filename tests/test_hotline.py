"""12345 work orders in (XLSX, XLS, CSV in GB18030, title rows, aliases) and the return sheet out."""

from __future__ import annotations

import io
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select

from app.cases import services
from app.cases.models import Case, Category
from app.extensions import db
from app.hotline.export import HEADERS, write_return_sheet
from app.hotline.importer import HotlineFileError, import_work_orders
from app.hotline.models import HotlineCategoryMap
from tests.conftest import csrf_token
from tests.factories import user

TZ = ZoneInfo("Asia/Shanghai")
DATA = Path(__file__).parent / "data"
HEADER = [
    "诉求编号",
    "问题分类",
    "二级分类",
    "三级分类",
    "标题",
    "主要内容",
    "来电人",
    "来电人电话",
    "被反映区",
    "被反映街乡镇",
    "村/社区",
    "小区点位",
    "来电时间",
    "主办单位",
    "工单性质",
]
ROWS = [
    # placed through our category name (三级分类 电梯故障)
    [
        "GD2027030001",
        "城乡建设",
        "物业管理",
        "电梯故障",
        "电梯停运",
        "3号楼电梯停运两天，老人出行困难",
        "张女士",
        "138 0000 1111",
        "贵池区",
        "秋浦街道",
        "杏花村社区",
        "阳光花园",
        "2027-03-01 09:12:00",
        "秋浦街道",
        "投诉",
    ],
    # placed through the mapping table (a path of levels)
    [
        "GD2027030002",
        "城乡建设",
        "物业管理",
        "楼道漏水",
        "楼道漏水",
        "5栋楼道天花板漏水",
        "李先生",
        "13900002222",
        "贵池区",
        "秋浦街道",
        "杏花村社区",
        "翠湖苑",
        "2027-03-01 10:00:00",
        "秋浦街道",
        "求助",
    ],
    # the same work-order number twice in one file
    [
        "GD2027030001",
        "城乡建设",
        "物业管理",
        "电梯故障",
        "电梯停运",
        "重复来电",
        "张女士",
        "13800001111",
        "贵池区",
        "秋浦街道",
        "杏花村社区",
        "阳光花园",
        "2027-03-01 11:00:00",
        "秋浦街道",
        "投诉",
    ],
    # a category nobody mapped
    [
        "GD2027030004",
        "环境保护",
        "噪声污染",
        "工地夜间施工",
        "夜间施工",
        "工地夜间施工噪音大",
        "王先生",
        "13700003333",
        "贵池区",
        "秋浦街道",
        "杏花村社区",
        "阳光花园",
        "2027-03-01 23:10:00",
        "秋浦街道",
        "投诉",
    ],
    # a compound we do not know
    [
        "GD2027030005",
        "城乡建设",
        "环境卫生",
        "垃圾未及时清运",
        "垃圾堆积",
        "小区门口垃圾三天未清运",
        "赵女士",
        "13600004444",
        "贵池区",
        "秋浦街道",
        "杏花村社区",
        "不存在花园",
        "2027-03-02 08:00:00",
        "秋浦街道",
        "投诉",
    ],
    # a landline caller in another community
    [
        "GD2027030006",
        "城乡建设",
        "市政设施",
        "公共照明损坏",
        "路灯不亮",
        "小区主干道路灯不亮一周",
        "周老师",
        "0566-2101234",
        "贵池区",
        "秋浦街道",
        "清风社区",
        "清溪雅苑",
        "2027-03-02 19:30:00",
        "秋浦街道",
        "求助",
    ],
    ["", "", "", "", "", "", "", "", "", "", "", "", "", "", ""],  # blank rows are not work orders
]


def xlsx_export() -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["池州市12345政务服务便民热线工单明细"])
    sheet.append(["导出时间：2027-03-03 08:00", None, "共 6 条"])
    sheet.append([])
    sheet.append(HEADER)
    for row in ROWS:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def csv_export(encoding: str = "gb18030") -> bytes:
    lines = ["12345热线工单导出,,,", ",".join(HEADER)] + [",".join(row) for row in ROWS]
    return ("\r\n".join(lines) + "\r\n").encode(encoding)


@pytest.fixture
def mapping(ctx):
    water = db.session.scalar(select(Category).where(Category.code == "water_leak"))
    db.session.add(HotlineCategoryMap(source="城乡建设/物业管理/楼道漏水", category_id=water.id))
    db.session.commit()  # a savepoint of the test's transaction: survives a dry run's rollback


def errors_by_row(report) -> dict[int, str]:
    return {item.row: item.reason for item in report.errors}


@pytest.mark.parametrize(("kind", "first_row"), [("xlsx", 5), ("csv", 3)])
def test_import_places_what_it_can_and_lists_the_rest(mapping, kind, first_row):
    data, name = (xlsx_export(), "orders.xlsx") if kind == "xlsx" else (csv_export(), "orders.csv")
    before = db.session.scalar(select(func.count(Case.id)))
    report = import_work_orders(data, name, user("admin"))
    assert report.header_row == first_row - 1
    assert (report.rows, len(report.created), len(report.skipped), len(report.errors)) == (6, 3, 0, 3)
    assert [item.row for item in report.created] == [first_row, first_row + 1, first_row + 5]
    errors = errors_by_row(report)
    assert set(errors) == {first_row + 2, first_row + 3, first_row + 4}
    assert f"also on row {first_row}" in errors[first_row + 2]
    assert "Unknown category 环境保护 / 噪声污染 / 工地夜间施工" in errors[first_row + 3]
    assert "Unknown compound 不存在花园" in errors[first_row + 4]
    assert db.session.scalar(select(func.count(Case.id))) == before + 3

    lift = db.session.scalar(select(Case).where(Case.external_ref == "12345:GD2027030001"))
    assert lift.channel == "hotline" and lift.category.code == "lift_fault"
    assert lift.compound.name == "阳光花园" and lift.state == "grid_assigned"
    assert lift.resident_phone == "13800001111" and lift.resident_name == "张女士"
    assert lift.description == "3号楼电梯停运两天，老人出行困难"  # the title adds nothing
    created = services.events_of(lift)[0].payload["extra"]["12345"]
    assert created["called_at"] == "2027-03-01 09:12:00" and created["nature"] == "投诉"
    leak = db.session.scalar(select(Case).where(Case.external_ref == "12345:GD2027030002"))
    assert leak.category.code == "water_leak" and leak.description == "【楼道漏水】5栋楼道天花板漏水"
    lamp = db.session.scalar(select(Case).where(Case.external_ref == "12345:GD2027030006"))
    assert lamp.resident_phone is None  # a landline gets no SMS; kept for the call-back
    assert services.events_of(lamp)[0].payload["extra"]["12345"]["caller_phone"] == "0566-2101234"

    again = import_work_orders(data, name, user("admin"))
    assert (len(again.created), len(again.skipped), len(again.errors)) == (0, 3, 3)
    assert {item.ref for item in again.skipped} == {lift.ref, leak.ref, lamp.ref}
    assert db.session.scalar(select(func.count(Case.id))) == before + 3


def test_utf8_csv_and_legacy_xls(ctx):
    report = import_work_orders(csv_export("utf-8-sig"), "orders.csv", user("admin"))
    assert len(report.created) == 2  # without the mapping the 楼道漏水 row is not placed either
    xls = import_work_orders((DATA / "12345-legacy.xls").read_bytes(), "old.xls", user("admin"))
    assert (xls.header_row, len(xls.created), xls.errors) == (3, 2, [])
    case = db.session.scalar(select(Case).where(Case.external_ref == "12345:XLS-0002"))
    assert case.compound.name == "康居家园" and case.category.code == "water_leak"
    extra = services.events_of(case)[0].payload["extra"]["12345"]
    assert extra["called_at"] == "2027-03-01 10:00:00"


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        (b"a,b,c\n1,2,3\n", "x.csv", "No header row"),
        (b"\xff\xfe\x00garbage", "x.xlsx", "not a readable XLSX"),
        (b"\xff\xfe\x00garbage", "x.xls", "not a readable .xls"),
        (b"anything", "x.pdf", "Unsupported file type"),
    ],
)
def test_unreadable_files_are_refused_as_a_whole(ctx, data, name, message):
    with pytest.raises(HotlineFileError) as error:
        import_work_orders(data, name, user("admin"))
    assert message in str(error.value)


def test_cli_dry_run_writes_nothing_then_imports(app, runner, tmp_path, mapping):
    path = tmp_path / "orders.csv"
    path.write_bytes(csv_export())
    with app.app_context():
        before = db.session.scalar(select(func.count(Case.id)))
    dry = runner.invoke(args=["import-12345", str(path), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "6 work orders: 3 new cases, 0 already imported, 3 not placed." in dry.output
    assert "row 5 (GD2027030001): Work-order number GD2027030001 also on row 3." in dry.output
    assert "Dry run" in dry.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id))) == before
    real = runner.invoke(args=["import-12345", str(path)])
    assert "3 new cases" in real.output
    twice = runner.invoke(args=["import-12345", str(path)])
    assert "0 new cases, 3 already imported" in twice.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id))) == before + 3


def test_return_sheet_carries_the_results(ctx, mapping, tmp_path, runner):
    now = datetime(2027, 3, 3, 9, 0, tzinfo=TZ)
    import_work_orders(xlsx_export(), "orders.xlsx", user("admin"), now=now)
    case = db.session.scalar(select(Case).where(Case.external_ref == "12345:GD2027030001"))
    for trigger, who, inputs in [
        ("grid_accept", "grid1", {}),
        ("dispatch_to_firm", "grid1", {}),
        ("firm_accept", "firm1", {}),
        ("firm_complete", "firm1", {"result": "已更换电梯主板，运行正常"}),
        ("signoff", "clerk1", {"contacted": True, "resolved": True, "satisfaction": "satisfied"}),
    ]:
        services.fire(case, trigger, user(who), inputs=inputs, now=now)
    db.session.flush()
    data, count = write_return_sheet(user("admin"), date(2027, 3, 3), date(2027, 3, 3))
    assert count == 3
    sheet = load_workbook(io.BytesIO(data)).active
    rows = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert tuple(rows[0]) == HEADERS
    by_number = {row[0]: row for row in rows[1:]}
    assert set(by_number) == {"GD2027030001", "GD2027030002", "GD2027030006"}
    done = by_number["GD2027030001"]
    assert done[1] == "已解决（满意）" or done[1] == "Resolved, satisfied"
    assert done[2] == "已更换电梯主板，运行正常"
    assert done[3] == "2027-03-03 09:00:00"
    assert (done[4], done[5], done[6]) == ("是", "满意", "池州红帆物业服务有限公司")
    open_row = by_number["GD2027030006"]
    assert open_row[3] is None and open_row[4] is None and open_row[6] == "池州安居物业管理有限公司"
    # a supervisor of 杏花村社区 gets only that community's work orders
    _data, mine = write_return_sheet(user("supervisor1"), date(2027, 3, 3), date(2027, 3, 3))
    assert mine == 2
    # another period has none
    assert write_return_sheet(user("admin"), date(2027, 3, 4), date(2027, 3, 5))[1] == 0
    with pytest.raises(ValueError):
        write_return_sheet(user("admin"), date(2027, 3, 5), date(2027, 3, 4))


def test_cli_export(app, runner, tmp_path, mapping):
    with app.app_context():
        import_work_orders(xlsx_export(), "orders.xlsx", user("admin"), now=datetime(2027, 3, 3, 9, 0, tzinfo=TZ))
        db.session.commit()
    out = tmp_path / "return.xlsx"
    result = runner.invoke(args=["export-12345", "--from", "2027-03-01", "--to", "2027-03-31", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 work orders written" in result.output
    sheet = load_workbook(out).active
    assert sheet.cell(1, 1).value == "工单编号" and sheet.max_row == 4
    bad = runner.invoke(args=["export-12345", "--from", "2027-03-31", "--to", "2027-03-01", "--out", str(out)])
    assert bad.exit_code == 1 and "before the start" in bad.output


def test_supervisor_uploads_checks_then_imports_within_their_area(client, auth, app, mapping):
    auth.login("supervisor1")
    page = client.get("/hotline")
    assert page.status_code == 200 and 'id="hotline-upload"' in page.get_data(as_text=True)
    with app.app_context():
        before = db.session.scalar(select(func.count(Case.id)))
    token = csrf_token(client, "/hotline")
    response = client.post(
        "/hotline/import",
        data={"csrf_token": token, "file": (io.BytesIO(xlsx_export()), "orders.xlsx")},
        content_type="multipart/form-data",
    )
    body = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'data-counts="6,2,0,4"' in body  # 清溪雅苑 is outside 杏花村社区
    assert 'class="table-danger" data-row="10"' in body and "不在您的管辖范围内" in body
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id))) == before
    pending = body.split('name="token" value="')[1].split('"')[0]
    confirm = client.post("/hotline/import/confirm", data={"csrf_token": token, "token": pending})
    assert confirm.status_code == 200 and 'data-counts="6,2,0,4"' in confirm.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Case.id))) == before + 2
    replay = client.post("/hotline/import/confirm", data={"csrf_token": token, "token": pending})
    assert replay.status_code == 400
    download = client.get("/hotline/export?from=2020-01-01&to=2020-12-31")
    assert download.status_code == 200 and download.mimetype.endswith("spreadsheetml.sheet")
    assert load_workbook(io.BytesIO(download.data)).active.max_row == 1
    assert client.get("/hotline/export?from=2027-13-01&to=x").status_code == 400
    bad = client.post(
        "/hotline/import",
        data={"csrf_token": token, "file": (io.BytesIO(b"x"), "orders.pdf")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400


def test_other_roles_cannot_use_the_hotline_page(client, auth):
    auth.login("clerk1")
    assert client.get("/hotline").status_code == 403
    assert client.get("/hotline/export?from=2027-03-01&to=2027-03-02").status_code == 403
    auth.logout()
    assert client.get("/hotline").status_code in (302, 401)


def test_admin_edits_the_category_mapping(client, auth, app):
    auth.login("admin")
    assert client.get("/admin/hotline_map/").status_code == 200
    with app.app_context():
        noise = db.session.scalar(select(Category.id).where(Category.code == "noise"))
    url = "/admin/hotline_map/new/"
    response = client.post(
        url,
        data={
            "csrf_token": csrf_token(client, url),
            "source": " 环境保护 / 噪声污染 ",
            "category": noise,
            "urgency": "",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        row = db.session.scalar(select(HotlineCategoryMap))
        assert (row.source, row.category_id, row.urgency) == ("环境保护/噪声污染", noise, None)
        report = import_work_orders(xlsx_export(), "orders.xlsx", user("admin"))
        assert "GD2027030004" in {item.order_no for item in report.created}
        db.session.rollback()
    auth.logout()
    auth.login("supervisor1")
    assert client.get("/admin/hotline_map/").status_code in (302, 403, 404)


def test_a_concurrent_import_of_the_same_work_order_is_skipped_not_a_crash(ctx, monkeypatch):
    """Two supervisors importing one file at once: the unique external reference lets one win."""
    from app.hotline import importer

    original = importer.register_case

    def racing(intake, actor, now=None):
        if intake.external_ref == "12345:GD2027030001":
            # the other import got there first, between our check and our insert
            other = services.Intake(**{**intake.__dict__, "resident_phone": None})
            with db.session.begin_nested():
                original(other, actor, now=now)
        return original(intake, actor, now=now)

    monkeypatch.setattr(importer, "register_case", racing)
    report = import_work_orders(xlsx_export(), "orders.xlsx", user("admin"))
    skipped = {item.order_no: item.reason for item in report.skipped}
    assert "GD2027030001" in skipped and "same moment" in skipped["GD2027030001"]
    # (the simulated rival insert shares our savepoint here, so it is rolled back with ours;) the rest goes on
    assert {item.order_no for item in report.created} == {"GD2027030006"}


def test_a_category_path_in_one_cell(ctx):
    data = (
        "工单编号,问题分类,主要内容,小区点位\n"
        "P1,城乡建设>物业管理>电梯故障,电梯门关不上,阳光花园\n"
        "P2,城乡建设/环境保护,工地噪音扰民,阳光花园\n"
    )
    report = import_work_orders(data.encode("gb18030"), "paths.csv", user("admin"))
    assert [item.order_no for item in report.created] == ["P1"]
    assert "城乡建设 / 环境保护" in report.errors[0].reason
