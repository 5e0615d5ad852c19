"""The main paths in a real browser (Chromium through Playwright), against a live server.

Runs on its own SQLite database and server thread; skipped when Chromium is not installed, and on the
PostgreSQL pass of ``make test`` (the pages do not depend on the database engine).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.browser_support import CHROMIUM, chromium, live_server
from tests.conftest import IS_POSTGRES

pytestmark = [
    pytest.mark.browser,
    pytest.mark.own_app,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed"),
    pytest.mark.skipif(IS_POSTGRES, reason="browser tests run once, on the SQLite pass"),
]


@pytest.fixture(scope="module")
def live_url(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("live")) as (_app, url):
        yield url


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"


def inline_code_in_cases_templates() -> list[str]:
    """``cases/…`` templates that still hold inline scripts or handlers (the strict CSP blocks them).

    The "workday" branch moves them to static files; until it is merged, the tests that depend on them
    are expected to fail and say which templates are the cause.
    """
    found = []
    for path in sorted((TEMPLATES / "cases").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        kinds = []
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            kinds.append("inline <script>")
        kinds += sorted(set(re.findall(r"(?<![\w.-])(on[a-z]+)\s*=\s*[\"']", text)))
        if kinds:
            found.append(f"{path.relative_to(TEMPLATES)} ({', '.join(kinds)})")
    return found


INLINE_IN_CASES = inline_code_in_cases_templates()


def _watch_csp(page):
    """Collect the Content-Security-Policy violations the browser reports on ``page``."""
    page.csp_violations = []
    page.on(
        "console",
        lambda message: (
            page.csp_violations.append(f"{page.url}: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    return page


def _login(browser, live_url, username):
    page = _watch_csp(browser.new_page(viewport={"width": 1280, "height": 900}))
    page.goto(live_url + "/login")
    page.fill("#username", username)
    page.fill("#password", "Demo@2026")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)  # supervisors land on the overdue board
    return page


@pytest.mark.xfail(
    bool(INLINE_IN_CASES),
    reason="the strict CSP blocks inline code still in: " + "; ".join(INLINE_IN_CASES),
    strict=False,
)
def test_clerk_registers_a_case_and_the_grid_worker_accepts_it(browser, live_url):
    clerk = _login(browser, live_url, "clerk1")
    clerk.click("text=登记诉求")
    clerk.select_option("#category", "garbage")
    clerk.select_option("#compound", label="阳光花园（杏花村社区）")
    building_options = clerk.locator("#building option:not([hidden])").count()
    assert building_options == 13  # "whole compound" + 阳光花园's 12 buildings; others are hidden
    clerk.select_option("#building", label="7栋")
    clerk.fill("#description", "7栋门口垃圾堆积两天无人清运")
    clerk.fill("#resident_name", "周女士")
    clerk.fill("#resident_phone", "139 0566 1234")
    clerk.click("#intake-form button[type=submit]")
    clerk.wait_for_selector("#case-ref")
    ref = clerk.inner_text("#case-ref")
    assert ref.startswith("KSM-")
    assert "待网格员签收" in clerk.inner_text(".state-badge")
    clerk.close()

    grid = _login(browser, live_url, "grid1")
    grid.goto(f"{live_url}/cases/{ref}")
    assert grid.locator('[data-state="grid_assigned"][aria-current="step"]').count() == 1
    # the next likely action is open already: one tap
    assert grid.locator("#act-grid_accept").is_visible()
    grid.click("#act-grid_accept button[type=submit]")
    grid.wait_for_selector(".alert-success")
    assert "网格员处置中" in grid.inner_text(".state-badge")
    grid.close()


def test_refused_action_shows_the_reason_and_keeps_the_input(browser, live_url):
    page = _login(browser, live_url, "firm1")
    page.goto(live_url + "/cases?state=firm_dispatched")
    page.click(".queue-row a")
    page.click("#danger-action-list button.accordion-button:has-text('退单')")
    page.fill("#firm_return-note", "此处属供水公司管网")
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    page.click("#act-firm_return button[type=submit]")
    # the reason is missing: no "are you sure?" yet, the missing field is focused and marked
    page.wait_for_selector("#firm_return-reason.is-invalid")
    assert dialogs == [] and page.evaluate("document.activeElement.id") == "firm_return-reason"
    assert page.input_value("#firm_return-note") == "此处属供水公司管网"
    page.close()


def test_language_switch_and_english_pages(browser, live_url):
    page = _login(browser, live_url, "supervisor1")
    page.click("button[name=locale][value=en]")
    page.wait_for_selector("html[lang=en]")
    assert "Cases" in page.inner_text("nav")
    page.goto(live_url + "/cases?overdue=1")
    assert page.locator("h1").inner_text().startswith("Cases")
    page.close()


def test_grid_worker_page_fits_a_phone(browser, live_url):
    page = browser.new_page(viewport={"width": 390, "height": 844})
    page.goto(live_url + "/login")
    page.fill("#username", "grid1")
    page.fill("#password", "Demo@2026")
    page.click("main button[type=submit]")
    page.wait_for_url(live_url + "/cases")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 400  # no sideways scrolling of the page itself
    page.close()


def test_pages_raise_no_csp_violations(browser, live_url):
    """Every main page under the strict CSP: no violation in the console (inline code in cases templates
    is listed, and tolerated on the cases pages only while the other branch is not merged)."""
    violations = []
    for username, paths in {
        "clerk1": ["/cases", "/cases/new", "/profile", "/inbox"],
        "admin": ["/admin/", "/admin/user/", "/admin/category/", "/admin/user/new/", "/admin/apitoken/"],
    }.items():
        page = _login(browser, live_url, username)
        for path in paths:
            page.goto(live_url + path)
            page.wait_for_load_state("load")
        if username == "clerk1":
            page.goto(live_url + "/cases")
            page.click(".queue-row a")
            page.wait_for_load_state("load")
        violations += page.csp_violations
        page.close()
    anonymous = _watch_csp(browser.new_page())
    for path in ("/login", "/track"):
        anonymous.goto(live_url + path)
        anonymous.wait_for_load_state("load")
    violations += anonymous.csp_violations
    anonymous.close()
    outside_cases = [v for v in violations if "/cases" not in v.split(": ")[0]]
    assert outside_cases == []
    if INLINE_IN_CASES:
        print("CSP violations from cases templates still to be cleaned:", INLINE_IN_CASES, violations)
    else:
        assert violations == []


def test_admin_batch_action_and_delete_confirmation_work_under_the_csp(browser, live_url):
    """Flask-Admin's inline handlers were replaced by data attributes + static/js/admin.js."""
    page = _login(browser, live_url, "admin")
    page.goto(live_url + "/admin/user/?search=grid2")
    page.check("input.action-checkbox")
    page.click("[data-admin-actions-menu]")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-admin-action=unlock]")
    page.wait_for_selector(".alert-success")
    assert "1" in page.inner_text(".alert-success")
    assert page.csp_violations == []
    page.close()


def test_sign_out_everywhere_asks_first_then_signs_out(browser, live_url):
    page = _login(browser, live_url, "street1")
    page.goto(live_url + "/profile")
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.click("text=在所有设备上退出")
    assert page.url.endswith("/profile"), "dismissing the question keeps the user signed in"
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=在所有设备上退出")
    page.wait_for_url(live_url + "/login")
    page.goto(live_url + "/profile")
    assert "/login" in page.url
    assert page.csp_violations == []
    page.close()


def test_countdown_says_overdue_without_a_zero(browser, live_url):
    """A step past its deadline by less than a minute of its working time (due at 17:30, evening now) reads
    "已超期", not "已超期 0 分钟"; further past, it says by how much."""
    page = _watch_csp(browser.new_page(viewport={"width": 1280, "height": 900}))
    page.clock.install()
    page.goto(live_url + "/login")
    page.fill("#username", "supervisor1")
    page.fill("#password", "Demo@2026")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(live_url + "/cases")
    rows = page.locator(".queue-row .countdown")
    assert rows.count() >= 2
    page.evaluate(
        """() => {
          const [a, b] = document.querySelectorAll(".queue-row .countdown");
          for (const [el, left] of [[a, "0"], [b, "-90"]]) {
            el.setAttribute("data-working", "1");
            el.setAttribute("data-left", left);
            el.setAttribute("data-due", String(Date.now() - 3 * 3600 * 1000));
          }
        }"""
    )
    page.clock.run_for(31_000)  # the next tick of the countdown
    # in the user's language (an earlier test may have switched it): 已超期 / Overdue
    label = {name: page.get_attribute("#queue", f"data-{name}") for name in ("overdue", "fmt-over", "unit-h", "unit-m")}
    assert label["overdue"] in ("已超期", "Overdue")
    assert rows.nth(0).inner_text().strip() == label["overdue"]
    later = rows.nth(1).inner_text().strip()
    by = label["fmt-over"].replace("{t}", f"1 {label['unit-h']} 30 {label['unit-m']}")
    assert later == f"{by} ({page.get_attribute('#queue', 'data-working')})", later
    assert page.locator(".queue-row").nth(0).get_attribute("data-level") == "2"
