"""Work queues and search: each user opens on their own open work by deadline, and finds any case by
what a caller says (reference, phone, name, words)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import timedelta

import pytest

from app.core.timeutil import to_local, utcnow
from tests.conftest import IS_POSTGRES
from tests.factories import make_case


def _refs(html: str) -> list[str]:
    return re.findall(r'data-ref="(KSM-\d{8}-\d{4})"', html)


def test_grid_worker_opens_on_own_open_work_by_deadline(client, auth):
    later = make_case("grid_handling", now=utcnow() - timedelta(minutes=5))  # 1 working day
    urgent = make_case("grid_assigned", urgency="urgent")  # 30 calendar minutes
    firm_work = make_case("firm_processing")
    closed = make_case("closed")
    other_grid = make_case("grid_assigned", compound="X03")
    auth.login("grid1")
    body = client.get("/cases").get_data(as_text=True)
    refs = _refs(body)
    assert urgent in refs and later in refs
    assert refs.index(urgent) < refs.index(later)
    assert firm_work not in refs and closed not in refs and other_grid not in refs
    assert "我的待办" in body and 'data-chip="grid_assigned"' in body
    # counts of the user's open work in the navigation
    assert re.search(r'id="my-work-count"[^>]*>\s*2\s*<', body)
    # closed cases only when asked
    closed_page = client.get("/cases?state=closed").get_data(as_text=True)
    assert closed in _refs(closed_page) and later not in _refs(closed_page)
    everything = _refs(client.get("/cases?state=all").get_data(as_text=True))
    assert {later, urgent, firm_work, closed} <= set(everything) and other_grid not in everything


def test_overdue_and_near_deadline_rows_are_coloured_and_counted(client, auth):
    overdue = make_case("firm_dispatched", urgency="urgent", now=utcnow() - timedelta(hours=3))
    fresh = make_case("firm_dispatched", urgency="urgent")
    auth.login("firm1")
    body = client.get("/cases").get_data(as_text=True)
    row = re.search(rf'<li class="queue-row[^"]*"[^>]*data-ref="{overdue}"', body).group(0)
    assert "queue-overdue" in row and 'data-level="2"' in row
    fresh_row = re.search(rf'<li class="queue-row[^"]*"[^>]*data-ref="{fresh}"', body).group(0)
    assert "queue-overdue" not in fresh_row and "queue-warning" not in fresh_row
    assert _refs(body)[0] == overdue
    assert 'class="countdown' in body and "js/countdown.js" in body
    # chips count by the clock, like the row colours, and filter the queue
    assert re.search(r'data-chip="overdue">[^<]*<span class="fw-bold">1</span>', body)
    assert re.search(r'id="my-overdue-count"[^>]*>\s*1\s*<', body)
    only_overdue = _refs(client.get("/cases?mine=1&due=overdue").get_data(as_text=True))
    assert only_overdue == [overdue]
    assert client.get("/cases?due=later", follow_redirects=True).status_code == 200
    # firm2 does not see firm1's work, in its queue or by search
    auth.logout()
    auth.login("firm2")
    assert overdue not in _refs(client.get("/cases?state=all").get_data(as_text=True))
    assert overdue not in _refs(client.get(f"/cases?q={overdue}").get_data(as_text=True))


def test_near_deadline_chip_and_filter(client, auth):
    near = make_case("grid_assigned", urgency="urgent", now=utcnow() - timedelta(minutes=26))  # 30 min limit
    calm = make_case("grid_assigned", urgency="urgent")
    auth.login("grid1")
    body = client.get("/cases").get_data(as_text=True)
    assert re.search(r'data-chip="warning">[^<]*<span class="fw-bold">1</span>', body)
    row = re.search(rf'<li class="queue-row[^"]*"[^>]*data-ref="{near}"', body).group(0)
    assert "queue-warning" in row
    assert _refs(client.get("/cases?mine=1&due=soon").get_data(as_text=True)) == [near]
    assert calm in _refs(body)


def test_every_filter_is_on_the_page_and_kept_in_the_url(client, auth):
    phone = make_case("grid_assigned", channel="phone")
    window = make_case("grid_assigned", channel="window")
    auth.login("supervisor1")
    body = client.get("/cases?state=open&channel=phone").get_data(as_text=True)
    assert phone in _refs(body) and window not in _refs(body)
    for name in ("compound_id", "created_from", "created_to", "escalation", "channel", "category", "urgency"):
        assert f'name="{name}"' in body
    assert 'value="phone" selected' in body
    today = to_local(utcnow()).date().isoformat()  # the filter's dates are the station's (Beijing) days
    ranged = _refs(client.get(f"/cases?state=open&created_from={today}&created_to={today}").get_data(as_text=True))
    assert phone in ranged
    tomorrow = (utcnow() + timedelta(days=2)).date().isoformat()
    assert phone not in _refs(client.get(f"/cases?state=open&created_from={tomorrow}").get_data(as_text=True))
    assert phone not in _refs(client.get("/cases?state=open&escalation=overdue").get_data(as_text=True))
    # a bad filter value is a message, not a 500
    bad = client.get("/cases?escalation=purple", follow_redirects=True)
    assert bad.status_code == 200 and "purple" in bad.get_data(as_text=True)
    assert client.get("/cases?cursor=garbage", follow_redirects=True).status_code == 200


def test_queue_pages_by_deadline_without_repeating_a_case(client, auth):
    refs = {make_case("grid_assigned", now=utcnow() - timedelta(minutes=n)) for n in range(30)}
    auth.login("grid1")
    seen, url = [], "/cases"
    while url:
        body = client.get(url).get_data(as_text=True)
        seen += _refs(body)
        link = re.search(r'href="([^"]*cursor=[^"]*)"[^>]*>[^<]*»', body)
        url = link.group(1).replace("&amp;", "&") if link else None
    assert set(seen) == refs and len(seen) == len(refs)


def test_search_by_what_a_caller_says(client, auth):
    ref = make_case("grid_handling", description="锅炉房管道破裂，地下室进水", resident_phone="13955551234")
    other = make_case("grid_handling", description="小区路灯不亮了", resident_phone="13700009999")
    auth.login("clerk1")

    def found(q):
        return _refs(client.get("/cases", query_string={"q": q}).get_data(as_text=True))

    assert ref in found("1234") and other not in found("1234")  # last 4 digits
    assert ref in found("13955551234") and other not in found("13955551234")  # full phone
    assert ref in found("锅炉房") and other not in found("锅炉房")  # a word of the description
    assert ref in found("陈先生")  # the resident's name
    assert found(ref) == [ref]  # the full reference
    assert found(ref.removeprefix("KSM-")) == [ref] == found(ref.lower())  # without the prefix, any case
    assert ref in found(ref[-9:])  # a part of it
    # the day and the number as a caller reads them out, of this year's case and of last year's
    older = make_case("closed", description="去年的楼道漏水", now=utcnow() - timedelta(days=400))
    assert found(ref[-9:]) == [ref] and found(older[-9:]) == [older]
    assert found(older[-9:].replace(older[-4:], "9999")) == []  # no such number that day
    assert found("1345-0001") == []  # no such day: a part of the texts, found nowhere
    assert ref in found("锅炉房 1234") and ref not in found("锅炉房 9999")  # every word must match
    assert ref in found("先生") and ref not in found("生锅炉")  # a word never spans the name and the description
    closed = make_case("closed", description="电梯按钮失灵已修好")
    assert closed in found("电梯按钮")  # search covers closed cases too
    assert 'id="empty-list"' in client.get("/cases?q=不存在的词语").get_data(as_text=True)


def test_a_whole_reference_is_recognised_however_it_is_typed():
    from app.cases.queries import DAY_REF_YEARS, _day_refs, _whole_ref, _word_kind

    assert _whole_ref("KSM-20261125-0001") == "KSM-20261125-0001"
    assert _whole_ref("ksm-20261125-0001") == _whole_ref("20261125-0001") == "KSM-20261125-0001"
    assert _whole_ref("20261125-12345") == "KSM-20261125-12345"  # a busy day's five-digit number
    assert _whole_ref("1125-0001") is None and _whole_ref("20261125") is None and _whole_ref("KSM-2026") is None
    assert _word_kind("20261125-0001") == "ref" and _word_kind("1125-0001") == "day_ref"
    assert _word_kind("1345-0001") == _word_kind("0230-0001") == _word_kind("1125-01") == "text"  # no such day
    assert _word_kind("138-1234-5678") == "phone" and _word_kind("5678") == "last4"
    this_year = to_local(utcnow()).year
    assert _day_refs("1125-0042") == [f"KSM-{this_year - n}1125-0042" for n in range(DAY_REF_YEARS)]
    assert all(ref[8:12] == "0229" for ref in _day_refs("0229-0001")) and len(_day_refs("0229-0001")) in (1, 2)


def test_api_search_with_q(client, app):
    from app.auth.services import create_token
    from app.extensions import db
    from tests.factories import user

    ref = make_case("grid_handling", description="锅炉房管道破裂", resident_phone="13955554321")
    with app.app_context():
        _row, token = create_token(user("clerk1"), "test")
        db.session.commit()
    headers = {"Authorization": f"Bearer {token}"}
    for q in ("4321", "锅炉房", ref.removeprefix("KSM-"), "13955554321"):
        data = client.get("/api/v1/cases", query_string={"q": q}, headers=headers).get_json()
        assert ref in [item["ref"] for item in data["items"]], q
    firm_token = None
    with app.app_context():
        _row, firm_token = create_token(user("firm2"), "test")
        db.session.commit()
    data = client.get("/api/v1/cases?q=4321", headers={"Authorization": f"Bearer {firm_token}"}).get_json()
    assert ref not in [item["ref"] for item in data["items"]]
    long = client.get("/api/v1/cases", query_string={"q": "x" * 61}, headers=headers)
    assert long.status_code in (400, 422)


def _all_pages(client, url):
    seen = []
    while url:
        body = client.get(url).get_data(as_text=True)
        seen += _refs(body)
        link = re.search(r'href="([^"]*cursor=[^"]*)"[^>]*>[^<]*»', body)
        url = link.group(1).replace("&amp;", "&") if link else None
    return seen


def test_a_common_word_pages_the_same_through_the_newest_cases_window(client, auth, monkeypatch):
    """A search first reads the newest cases of the list (a small window here); pages found there and pages
    found through the search indexes are the same cases in the same order, none repeated or missed."""
    from app.cases import queries

    base = utcnow() - timedelta(days=1)
    at = [base + timedelta(minutes=n) for n in range(48)]
    word = [make_case("grid_assigned", description=f"锅炉房漏水 {n}", now=at[n]) for n in range(40)]
    other = [make_case("grid_assigned", description="楼道灯不亮", now=at[40 + n]) for n in range(8)]
    expected = list(reversed(word))  # newest first
    auth.login("clerk1")
    url = "/cases?state=all&q=" + "锅炉房"
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 0)  # the indexes alone
    assert _all_pages(client, url) == expected
    served = []
    newest = queries._search_newest

    def spy(*args):
        found = newest(*args)
        served.append(found is not None)
        return found

    monkeypatch.setattr(queries, "_search_newest", spy)
    for window in (30, 60, 500):  # the page is filled inside the window, or not, or the window holds all
        monkeypatch.setattr(queries, "SEARCH_WINDOW", window)
        assert _all_pages(client, url) == expected, window
    if IS_POSTGRES:  # both ways were taken (SQLite always uses the plain condition)
        assert True in served and False in served
    assert not set(other) & set(_all_pages(client, url))


def test_a_word_with_matches_only_outside_the_newest_cases_pages_through_the_search_index(client, auth, monkeypatch):
    """Past the newest-cases window the list is read through the search index (scope and words together):
    the same cases in the same order, and the matches of another community never shown."""
    from app.cases import queries

    base = utcnow() - timedelta(days=2)
    mine = [
        make_case("grid_assigned", description=f"锅炉房漏水 {n}", now=base + timedelta(minutes=n)) for n in range(12)
    ]
    theirs = [
        make_case(
            "grid_assigned",
            description=f"锅炉房漏水 {n}",
            compound="X05",
            clerk="clerk2",
            now=base + timedelta(minutes=20 + n),
        )
        for n in range(12)
    ]
    newer = [
        make_case("grid_assigned", description="楼道灯不亮", now=base + timedelta(minutes=40 + n)) for n in range(3)
    ]
    auth.login("clerk1")
    url = "/cases?state=all&q=" + "锅炉房"
    planned = []
    original = queries._bitmap_scans

    def spy():
        planned.append(True)
        return original()

    monkeypatch.setattr(queries, "_bitmap_scans", spy)
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 2)  # the newest cases of the list hold no match
    assert _all_pages(client, url) == list(reversed(mine))
    assert planned  # each page went through the search index, not the window
    assert not (set(theirs) | set(newer)) & set(_all_pages(client, url + "&state=open"))
    auth.logout()
    auth.login("clerk2")
    assert _all_pages(client, url) == list(reversed(theirs))


@contextmanager
def _statements(app, wanted):
    """Collect ``(statement, parameters)`` of the SQL run inside the block that ``wanted(statement)`` picks."""
    from sqlalchemy import event

    from app.extensions import db

    captured = []

    def capture(_conn, _cursor, statement, parameters, _context, _many):
        if wanted(statement):
            captured.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", capture)
    try:
        yield captured
    finally:
        event.remove(engine, "before_cursor_execute", capture)


def _plan(app, statement, parameters, *, only_index: str | None = None) -> str:
    """PostgreSQL's plan of ``statement`` without sequential scans, inside a savepoint of the test's
    transaction (rolled back); ``only_index``: the case table's other indexes dropped first (a handful of
    rows: any index would do as well as the one a large table needs)."""
    from sqlalchemy import text

    from app.extensions import db

    with app.app_context():
        savepoint = db.session.begin_nested()
        if only_index:
            others = db.session.execute(
                text(
                    """SELECT i.indexrelid::regclass::text FROM pg_index i
                       LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
                       WHERE i.indrelid = '"case"'::regclass AND c.oid IS NULL
                       AND i.indexrelid <> CAST(:keep AS regclass)"""
                ),
                {"keep": only_index},
            ).scalars()
            for name in list(others):
                db.session.execute(text(f"DROP INDEX {name}"))
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        connection = db.session.connection()
        plan = "\n".join(row[0] for row in connection.exec_driver_sql("EXPLAIN " + statement, parameters))
        savepoint.rollback()
    return plan


@pytest.mark.skipif(not IS_POSTGRES, reason="the trigram search index is PostgreSQL's")
def test_a_free_text_search_reads_the_search_index_of_the_joined_texts(app, client, auth, monkeypatch):
    """The list statement compares the same expression the search index holds (constants in the SQL, so a
    prepared statement's generic plan matches it too), and PostgreSQL plans it on that index."""
    from app.cases import queries

    make_case("grid_assigned", description="锅炉房漏水")
    monkeypatch.setattr(queries, "SEARCH_WINDOW", 1)  # past the window: the search index
    auth.login("clerk1")
    with _statements(app, lambda sql: "LIKE" in sql and "LIMIT" in sql and "anon_1" not in sql) as captured:
        assert client.get("/cases?q=锅炉房").status_code == 200
    (statement, parameters), *_ = captured
    assert "coalesce(\"case\".ref, '') || ' ' || coalesce(\"case\".resident_name, '')" in statement
    plan = _plan(app, statement, parameters, only_index="ix_case_search_text")
    assert "Bitmap Index Scan on ix_case_search_text" in plan, plan
    assert "Index Cond: ((community_id = " in plan, plan  # the scope inside the same index


@pytest.mark.skipif(not IS_POSTGRES, reason="plans are PostgreSQL's")
def test_a_whole_reference_is_looked_up_on_the_unique_index_not_across_the_scope(app, client, auth, monkeypatch):
    """A whole reference (with or without its prefix) is found by equality on the references' unique
    indexes, whatever the size of the user's area: the list statement is planned freely (not with the
    search's bitmap-only settings) and reads ``uq_case_ref``, not the search index over the scope."""
    from app.cases import queries

    ref = make_case("grid_assigned", description="锅炉房漏水")
    other = make_case("grid_assigned", description="楼道灯不亮了")
    planned = []
    original = queries._bitmap_scans
    monkeypatch.setattr(queries, "_bitmap_scans", lambda: planned.append(True) or original())
    auth.login("supervisor1")
    with _statements(app, lambda sql: "LIMIT" in sql and "case_report" in sql) as captured:
        for typed in (ref, ref.removeprefix("KSM-"), ref.lower()):
            page = client.get(f"/cases?q={typed}").get_data(as_text=True)
            assert ref in page and other not in page
    assert not planned
    (statement, parameters), *_ = captured
    plan = _plan(app, statement, parameters)
    assert "uq_case_ref" in plan and "uq_case_report_ref" in plan, plan
    assert "ix_case_search_text" not in plan, plan


def test_the_compound_filter_lists_the_compounds_of_the_users_area(client, auth):
    """Each role's list offers the compounds it may filter by, and selecting one keeps it selected."""

    def offered():
        body = client.get("/cases?state=open").get_data(as_text=True)
        select = re.search(r'<select[^>]*id="compound_id".*?</select>', body, re.S).group(0)
        return re.findall(r'<option value="\d+"[^>]*>([^<]+)</option>', select)

    auth.login("firm1")  # firm1's contracts: 阳光花园, 翠湖苑, 金域华府, 书香门第, 锦绣江南
    names = offered()
    assert {"阳光花园", "翠湖苑", "金域华府", "书香门第", "锦绣江南"} <= set(names)
    assert "杏花村小区" not in names and "清溪雅苑" not in names  # firm2's
    assert len(names) == len(set(names))  # once each, though a compound may have had several contracts
    auth.logout()
    auth.login("admin")
    everything = offered()
    assert {"阳光花园", "杏花村小区", "清溪雅苑", "天湖名郡"} <= set(everything) and len(everything) > len(names)
    body = client.get("/cases?state=open&compound_id=1").get_data(as_text=True)
    assert re.search(r'<option value="1" selected>', body)
