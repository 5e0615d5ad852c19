"""Supervisors' pages as a user would use them: the board, bulk urging, the dashboard and its drill-down,
the bulletin (page, workbook, CSV), the firm ratings, marking a follow-up invalid; and who may see what."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from app.cases.models import CaseEvent, FollowUp
from app.core.timeutil import app_tz, utcnow
from app.extensions import db
from app.reports import indicators
from app.sla.services import run_sweep
from tests.factories import load, make_case, user

TZ = app_tz()


def _overdue_cases():
    """Two overdue cases in 杏花村 (supervisor1's community) and one in another community, escalated now."""
    long_ago = utcnow() - timedelta(days=10)
    refs = [make_case("grid_assigned", now=long_ago), make_case("firm_processing", now=long_ago)]
    other = make_case("grid_assigned", now=long_ago, compound="X05")
    run_sweep()
    db.session.commit()
    return refs, other


def test_supervisors_land_on_the_overdue_board(client, auth, ctx):
    (a, b), other = _overdue_cases()
    auth.login("supervisor1")
    response = client.get("/", follow_redirects=True)
    html = response.get_data(as_text=True)
    assert response.request.path == "/board"
    assert a in html and b in html and other not in html  # scope: only their community
    assert re.search(r'id="overdue-count"[^>]*>2<', html)  # the navigation's count
    count = re.search(r'data-count="red"[^>]*>.*?fs-3[^>]*>(\d+)<', html, re.S)
    assert count and int(count.group(1)) == 2
    assert "杏花村第一网格" in html or "阳光花园" in html  # grouped by compound


def test_bulk_urge_urges_the_ticked_cases_with_one_note(client, auth, ctx):
    (a, b), other = _overdue_cases()
    auth.login("street1")
    response = auth.post("/board/urge", {"refs": [a, b], "note": "今天下班前办结"}, form_page="/board")
    assert response.status_code == 302
    for ref in (a, b):
        urges = db.session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == load(ref).id, CaseEvent.kind == "urge")
        ).all()
        assert [u.note for u in urges] == ["今天下班前办结"]
    page = client.get("/board").get_data(as_text=True)
    assert "今天下班前办结" not in page  # the note field is empty again after success


def test_bulk_urge_without_a_note_keeps_the_ticks_and_urges_nothing(client, auth, ctx):
    (a, b), _other = _overdue_cases()
    auth.login("supervisor1")
    response = auth.post("/board/urge", {"refs": [a], "note": "  "}, form_page="/board")
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(rf'value="{a}"[^>]*checked', html)
    assert not db.session.scalar(select(CaseEvent).where(CaseEvent.kind == "urge"))


def test_bulk_urge_skips_cases_outside_the_area(client, auth, ctx):
    (a, _b), other = _overdue_cases()
    auth.login("supervisor1")
    response = auth.post("/board/urge", {"refs": [a, other], "note": "请加快"}, form_page="/board")
    assert response.status_code == 302
    assert db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == load(a).id, CaseEvent.kind == "urge"))
    assert not db.session.scalar(select(CaseEvent).where(CaseEvent.case_id == load(other).id, CaseEvent.kind == "urge"))
    page = client.get("/board").get_data(as_text=True)
    assert f"{other} 未催办" in page  # the skipped case is named with the reason


@pytest.mark.parametrize("username, status", [("clerk1", 403), ("grid1", 403), ("firm1", 403), ("branch1", 403)])
def test_the_board_and_dashboard_are_for_supervisors(client, auth, username, status):
    auth.login(username)
    for path in ("/board", "/reports/dashboard", "/reports/bulletin", "/reports/bulletin.xlsx"):
        assert client.get(path).status_code == status, path


def test_pages_need_a_login(client):
    for path in ("/board", "/reports/dashboard", "/reports/ratings", "/reports/bulletin"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def _month_with_answers():
    """November 2026: two satisfied answers on firm1's work in 阳光花园, one unsatisfied on firm2's in X03."""
    from app.cases import services

    start = datetime(2026, 11, 10, 10, 0, tzinfo=TZ)
    refs = []
    for compound, grid, satisfaction in (
        ("X01", "grid1", "satisfied"),
        ("X01", "grid1", "satisfied"),
        ("X03", "grid2", "unsatisfied"),
    ):
        ref = make_case("awaiting_signoff", compound=compound, now=start)
        services.fire(
            load(ref),
            "signoff",
            user(grid),
            now=start + timedelta(hours=2),
            inputs={"contacted": True, "resolved": satisfaction != "unsatisfied", "satisfaction": satisfaction},
        )
        db.session.commit()
        refs.append(ref)
    return refs


def test_dashboard_numbers_drill_down_to_their_cases(client, auth, ctx):
    refs = _month_with_answers()
    auth.login("street1")
    html = client.get("/reports/dashboard?period=2026-11&group=firm").get_data(as_text=True)
    assert 'data-chart="trend"' in html and 'id="chart-data"' in html
    # the firm ranking links each firm's satisfaction rate to its cases
    link = re.search(r'href="(/cases\?figure=satisfaction_rate&amp;period=2026-11&amp;slice=firm&amp;value=\d+)"', html)
    assert link, "no drill-down link for a firm's satisfaction rate"
    listing = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "data-drill" in listing
    shown = {ref for ref in refs if ref in listing}
    assert shown in ({refs[0], refs[1]}, {refs[2]})
    # the KPI "satisfaction rate" of the whole street: 2 of 3 satisfied
    total = indicators.compute(user("street1"), indicators.parse_period("2026-11"), "community").total
    assert total.satisfaction_rate == pytest.approx(2 / 3, abs=1e-4)
    assert "66.7%" in html


def test_dashboard_tables_download_as_csv_and_bad_input_is_explained(client, auth, ctx):
    _month_with_answers()
    auth.login("street1")
    response = client.get("/reports/dashboard.csv?period=2026-11&group=community&table=rank_firm")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff") and "池州红帆物业" in text
    assert client.get("/reports/dashboard.csv?period=2026-11&table=nope").status_code == 404
    assert client.get("/reports/dashboard.csv?period=2026-13").status_code == 400
    response = client.get("/reports/dashboard?period=garbage", follow_redirects=True)
    assert response.status_code == 200 and "2026-Q4" in response.get_data(
        as_text=True
    )  # the message says what is allowed


def test_drill_down_with_a_bad_figure_is_a_message_not_a_500(client, auth):
    auth.login("street1")
    response = client.get("/cases?figure=nonsense&period=2026-11", follow_redirects=True)
    assert response.status_code == 200
    response = client.get("/cases?figure=satisfaction_rate&period=2026-11&slice=firm&value=abc", follow_redirects=True)
    assert response.status_code == 200


def test_the_bulletin_workbook_cells(client, auth, ctx):
    refs = _month_with_answers()
    auth.login("street1")
    response = client.get("/reports/bulletin.xlsx?month=2026-11")
    assert response.status_code == 200
    assert "bulletin-2026-11.xlsx" in response.headers["Content-Disposition"]
    book = load_workbook(io.BytesIO(response.data))
    assert book.sheetnames == ["汇总", "超期诉求", "黄红牌", "物业信用评价"]
    summary = book["汇总"]
    assert "2026-11" in summary["A1"].value and summary.freeze_panes == "A4"
    headers = [c.value for c in summary[3]]
    assert headers[:3] == ["排名", "名称", "新增诉求"]
    satisfaction_col = headers.index("满意率") + 1
    composite_col = headers.index("综合评价率") + 1
    assert summary.cell(row=4, column=1).value == "社区"
    first = [c.value for c in summary[5]]
    assert first[1] == "杏花村社区" and first[0] == 1
    cell = summary.cell(row=5, column=satisfaction_col)
    assert (
        cell.value == pytest.approx(2 / 3, abs=1e-4) and cell.number_format == "0.0%"
    )  # X01 and X03 are both in 杏花村
    assert isinstance(summary.cell(row=5, column=composite_col).value, float)
    assert summary.page_setup.orientation == "landscape" and summary.page_setup.fitToWidth == 1
    ratings = book["物业信用评价"]
    names = [ratings.cell(row=r, column=2).value for r in range(4, ratings.max_row + 1)]
    assert names == ["池州红帆物业服务有限公司", "池州安居物业管理有限公司"]  # F01 is rated higher (all satisfied)
    assert "暂定" in ratings["A1"].value or "provisional" in ratings["A1"].value
    del refs


def test_bulletin_page_and_csv(client, auth, ctx):
    _month_with_answers()
    auth.login("supervisor1")
    html = client.get("/reports/bulletin?month=2026-11").get_data(as_text=True)
    assert "杏花村社区" in html and 'data-table="summary-1"' in html and "66.7%" in html
    csv_text = client.get("/reports/bulletin.csv?month=2026-11").get_data(as_text=True)
    lines = csv_text.splitlines()
    assert lines[0].startswith("\ufeff关键小事办理情况月度通报 2026-11")
    header = lines[3].split(",")
    row = next(line.split(",") for line in lines if line.startswith("1,杏花村社区"))
    assert float(row[header.index("满意率")]) == pytest.approx(2 / 3, abs=1e-4)
    assert client.get("/reports/bulletin.pdf?month=2026-11").status_code == 404
    assert client.get("/reports/bulletin?month=2026-Q4", follow_redirects=True).status_code == 200


def test_ratings_page_compute_adjust_and_history(client, auth, ctx):
    _month_with_answers()
    auth.login("street1")
    html = client.get("/reports/ratings?month=2026-11").get_data(as_text=True)
    assert "池州红帆物业" in html and "Provisional" not in html  # Chinese by default
    response = auth.post("/reports/ratings/compute", {"month": "2026-11"}, form_page="/reports/ratings?month=2026-11")
    assert response.status_code == 302
    html = client.get("/reports/ratings?month=2026-11").get_data(as_text=True)
    assert 'data-firm="F01"' in html
    response = auth.post(
        "/reports/ratings/adjust",
        {"month": "2026-11", "firm": "F02", "points": "99", "reason": "x"},
        form_page="/reports/ratings?month=2026-11",
    )
    assert response.status_code == 422 and 'value="99"' in response.get_data(as_text=True)
    response = auth.post(
        "/reports/ratings/adjust",
        {"month": "2026-11", "firm": "F02", "points": "5", "reason": "整改及时"},
        form_page="/reports/ratings?month=2026-11",
    )
    assert response.status_code == 302
    assert "整改及时" in client.get("/reports/ratings?month=2026-11").get_data(as_text=True)
    assert "2026-11" in client.get("/reports/ratings/F02").get_data(as_text=True)
    assert client.get("/reports/ratings/NOPE").status_code == 404


def test_property_managers_see_their_own_firm_only(client, auth, ctx):
    _month_with_answers()
    auth.login("firm2")
    html = client.get("/reports/ratings?month=2026-11").get_data(as_text=True)
    assert "池州安居物业" in html and "池州红帆物业" not in html
    assert client.get("/reports/ratings/F01").status_code == 404
    assert client.get("/reports/ratings/F02").status_code == 200
    response = auth.post("/reports/ratings/compute", {"month": "2026-11"}, form_page="/reports/ratings")
    assert response.status_code == 403


def test_a_community_supervisor_cannot_compute_ratings(client, auth, ctx):
    _month_with_answers()
    auth.login("supervisor1")
    response = auth.post("/reports/ratings/compute", {"month": "2026-11"}, form_page="/reports/ratings")
    assert response.status_code == 403


def test_marking_a_follow_up_invalid_from_the_case_page(client, auth, ctx):
    ref = _month_with_answers()[0]
    follow_up = db.session.scalar(select(FollowUp).where(FollowUp.case_id == load(ref).id))
    auth.login("supervisor1")
    page = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert f"/follow-ups/{follow_up.id}/validity" in page
    response = auth.post(
        f"/follow-ups/{follow_up.id}/validity", {"valid": "0", "reason": "", "ref": ref}, form_page=f"/cases/{ref}"
    )
    assert response.status_code == 302 and db.session.get(FollowUp, follow_up.id).valid is True
    auth.post(
        f"/follow-ups/{follow_up.id}/validity", {"valid": "0", "reason": "空号", "ref": ref}, form_page=f"/cases/{ref}"
    )
    db.session.expire_all()
    assert db.session.get(FollowUp, follow_up.id).valid is False
    assert "空号" in client.get(f"/cases/{ref}").get_data(as_text=True)
    auth.logout()
    auth.login("grid1")
    assert f"/follow-ups/{follow_up.id}/validity" not in client.get(f"/cases/{ref}").get_data(as_text=True)
    response = auth.post(f"/follow-ups/{follow_up.id}/validity", {"valid": "1", "reason": "x", "ref": ref})
    assert response.status_code == 403


def _token(username):
    from app.auth.services import create_token

    _row, secret = create_token(user(username), "reports")
    db.session.commit()
    return {"Authorization": f"Bearer {secret}"}


def test_api_indicators_and_ratings(client, ctx):
    _month_with_answers()
    headers = _token("street1")
    body = client.get("/api/v1/indicators?period=2026-11&group=firm", headers=headers).get_json()
    assert body["group"] == "firm" and body["period"]["kind"] == "month"
    firms = {row["code"]: row for row in body["rows"]}
    assert firms["F01"]["satisfaction_rate"] == 1.0 and firms["F02"]["satisfaction_rate"] == 0.0
    assert firms["F01"]["follow_ups"] == 2 and body["total"]["follow_ups"] == 3
    assert "满意" in body["definitions"]["satisfaction_rate"]["how"]
    quarter = client.get("/api/v1/indicators?period=2026-Q4&group=category", headers=headers).get_json()
    assert quarter["period"]["kind"] == "quarter" and quarter["total"]["follow_ups"] == 3
    bad = client.get("/api/v1/indicators?period=2026-13", headers=headers)
    assert bad.status_code == 422 and bad.get_json()["error"]["code"] == "validation_error"
    assert client.get("/api/v1/indicators?group=planet", headers=headers).status_code == 422
    # the old rates endpoint keeps its shape and agrees
    rates = client.get("/api/v1/rates?period=2026-11&group_by=firm", headers=headers).get_json()
    assert {r["code"]: r["satisfaction_rate"] for r in rates["rows"]} == {"F01": 1.0, "F02": 0.0}

    ratings = client.get("/api/v1/ratings?month=2026-11", headers=headers).get_json()
    assert ratings["frozen"] is False and [r["code"] for r in ratings["items"]] == ["F01", "F02"]
    first = ratings["items"][0]
    assert set(first) >= {"code", "name", "score", "grade", "components", "adjustments", "restricted_until"}
    own = client.get("/api/v1/ratings?month=2026-11", headers=_token("firm2")).get_json()
    assert [r["code"] for r in own["items"]] == ["F02"]
    assert client.get("/api/v1/ratings", headers=_token("clerk1")).status_code == 403
    assert client.get("/api/v1/ratings?month=nov", headers=headers).status_code == 422
    scoped = client.get("/api/v1/indicators?period=2026-11", headers=_token("supervisor2")).get_json()
    assert scoped["total"]["follow_ups"] == 0  # another community's supervisor sees none of these


def test_the_overdue_badge_is_capped(ctx, monkeypatch):
    """The navigation counts overdue cases only up to the cap ("99+"): a short scan on every page."""
    from app.reports import board
    from tests.factories import user

    _overdue_cases()
    supervisor = user("supervisor1")
    assert board.overdue_count(supervisor) == 2
    assert board.overdue_count(supervisor, cap=1) == 1
    assert board.overdue_count(user("firm1")) == 0  # no board, no count


def test_the_bulletin_page_lists_the_first_rows_and_counts_them_all(client, auth, ctx, monkeypatch):
    """A street of a large city has hundreds of cards a month: the page shows the first ``PAGE_ROWS`` of the
    overdue cases and of the cards with their full counts; the workbook lists every one."""
    from app.reports import bulletin

    (a, b), other = _overdue_cases()
    month = indicators.current_month(utcnow()).label
    auth.login("street1")
    monkeypatch.setattr(bulletin, "PAGE_ROWS", 2)
    html = client.get(f"/reports/bulletin?month={month}").get_data(as_text=True)
    overdue = re.search(r'data-table="overdue".*?</table>', html, re.S).group(0)
    assert overdue.count("<tr>") - 1 == 2  # the header row and two cases
    assert re.search(r'text-bg-danger">3<', html)  # the count is of all three
    assert 'data-shown="overdue"' in html and "显示前 2 条" in html
    cards = re.search(r'data-table="cards".*?</table>', html, re.S).group(0)
    shown = cards.count("<tr class=")
    total = int(re.search(r'text-bg-warning">(\d+)<', html).group(1))
    assert shown == 2 and total >= 3 and 'data-shown="cards"' in html
    book = load_workbook(io.BytesIO(client.get(f"/reports/bulletin.xlsx?month={month}").data))
    listed = {row[0].value for row in book["超期诉求"].iter_rows(min_row=4) if row[0].value}
    assert {a, b, other} <= listed
    assert sum(1 for row in book["黄红牌"].iter_rows(min_row=4) if row[0].value) == total
    # with fewer rows than a page, no note and nothing counted twice
    monkeypatch.setattr(bulletin, "PAGE_ROWS", 200)
    html = client.get(f"/reports/bulletin?month={month}").get_data(as_text=True)
    assert "data-shown=" not in html and re.search(r'text-bg-danger">3<', html)
