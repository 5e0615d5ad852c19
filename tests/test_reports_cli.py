"""``flask bulletin``, ``flask rating compute`` and ``flask reports refresh`` as an operator would run them."""

from __future__ import annotations

from datetime import datetime, timedelta

from openpyxl import load_workbook
from sqlalchemy import select

from app.cases import services
from app.core.timeutil import app_tz
from app.extensions import db
from app.reports.models import FirmRating, RollupMonth
from tests.factories import load, make_case, user

TZ = app_tz()


def _a_month_ago_with_answers():
    """Two cases signed off 40 days ago: a month that is over whatever today is."""
    when = datetime.now(TZ) - timedelta(days=40)
    for satisfaction in ("satisfied", "unsatisfied"):
        ref = make_case("awaiting_signoff", now=when)
        services.fire(
            load(ref),
            "signoff",
            user("grid1"),
            now=when + timedelta(hours=1),
            inputs={"contacted": True, "resolved": satisfaction == "satisfied", "satisfaction": satisfaction},
        )
        db.session.commit()
    return f"{(when + timedelta(hours=1)).year:04d}-{(when + timedelta(hours=1)).month:02d}"


def test_bulletin_xlsx_and_csv(runner, ctx, tmp_path):
    month = _a_month_ago_with_answers()
    out = tmp_path / "通报.xlsx"
    result = runner.invoke(args=["bulletin", "--month", month, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert month in result.output and "communities" in result.output  # CLI_LOCALE=en in the tests
    book = load_workbook(out)
    assert book.sheetnames == ["Summary", "Overdue cases", "Cards", "Firm ratings"]
    summary = book["Summary"]
    headers = [c.value for c in summary[3]]
    row = [c.value for c in summary[5]]
    assert row[1] == "杏花村社区" and row[headers.index("Satisfaction rate")] == 0.5
    csv_out = tmp_path / "summary.csv"
    result = runner.invoke(args=["bulletin", "--month", month, "--scope", "community:C01", "--out", str(csv_out)])
    assert result.exit_code == 0, result.output
    text = csv_out.read_text(encoding="utf-8-sig")
    assert "杏花村社区" in text and "Satisfaction rate" in text


def test_bulletin_refuses_bad_arguments_with_a_message(runner, ctx, tmp_path):
    for args, message in (
        (["--month", "2026-13", "--out", str(tmp_path / "a.xlsx")], "2026-Q4"),
        (["--month", "2026-11", "--out", str(tmp_path / "a.pdf")], ".xlsx"),
        (["--month", "2026-11", "--scope", "planet:1", "--out", str(tmp_path / "a.xlsx")], "street:CODE"),
        (["--month", "2026-11", "--scope", "street:NOPE", "--out", str(tmp_path / "a.xlsx")], "NOPE"),
    ):
        result = runner.invoke(args=["bulletin", *args])
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert not (tmp_path / "a.xlsx").exists()


def test_rating_compute_freezes_and_says_so_the_second_time(runner, ctx):
    month = _a_month_ago_with_answers()
    result = runner.invoke(args=["rating", "compute", "--month", month])
    assert result.exit_code == 0, result.output
    assert "F01" in result.output and "F02" in result.output
    assert len(db.session.scalars(select(FirmRating).where(FirmRating.month == month)).all()) == 2
    again = runner.invoke(args=["rating", "compute", "--month", month])
    assert again.exit_code == 0 and "already rated" in again.output
    refused = runner.invoke(args=["rating", "compute", "--month", month, "--recompute"])
    assert refused.exit_code != 0 and "Say why" in refused.output
    redone = runner.invoke(args=["rating", "compute", "--month", month, "--recompute", "--reason", "复核"])
    assert redone.exit_code == 0, redone.output
    future = runner.invoke(args=["rating", "compute", "--month", "2999-01"])
    assert future.exit_code != 0 and "not over" in future.output


def test_reports_refresh_builds_the_rollup(runner, ctx):
    month = _a_month_ago_with_answers()
    result = runner.invoke(args=["reports", "refresh", "--all"])
    assert result.exit_code == 0, result.output
    state = db.session.get(RollupMonth, month)
    assert state is not None and state.complete and state.rows >= 1
    bad = runner.invoke(args=["reports", "refresh", "--month", "nope"])
    assert bad.exit_code != 0
