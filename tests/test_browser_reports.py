"""The supervisors' story in a real browser: a street supervisor lands on the overdue board, urges two
cases at once, opens the dashboard, drills down from a firm's satisfaction rate to its cases and downloads
the bulletin. Screenshots of the board, the dashboard and the ranking at desktop and phone width go to
``$ARTIFACTS_DIR`` (default: the test's temporary directory); they are not committed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser_support import chromium, live_server
from tests.test_browser import pytestmark  # noqa: F401  (same markers: browser, own_app)

WIDTHS = {"desktop": (1366, 900), "phone": (375, 812)}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    base = tmp_path_factory.mktemp("live-reports")
    with live_server(base, sweep=True) as (_app, url):  # the demo's late cases get their cards
        yield url, base


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


def _artifacts(base: Path) -> Path:
    folder = Path(os.environ.get("ARTIFACTS_DIR") or base / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page(browser, url, username, size=WIDTHS["desktop"], accept_downloads=False):
    context = browser.new_context(viewport={"width": size[0], "height": size[1]}, accept_downloads=accept_downloads)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", "Demo@2026")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda current: "/login" not in current)
    return page, errors


def test_street_supervisor_board_urge_dashboard_drill_down_bulletin(browser, live):
    url, base = live
    page, errors = _page(browser, url, "street1", accept_downloads=True)
    # lands on the overdue board
    assert page.url.endswith("/board")
    assert page.locator("h1").inner_text().startswith("超期督办")
    overdue = page.locator('#overdue input[name="refs"]')
    assert overdue.count() >= 2, "the demo should have overdue cases after a sweep"
    refs = [overdue.nth(0).get_attribute("value"), overdue.nth(1).get_attribute("value")]
    # urge two in bulk
    overdue.nth(0).check()
    overdue.nth(1).check()
    page.fill("#urge-note", "请今天下班前处理完毕并反馈")
    page.click("#bulk-urge button[type=submit]")
    page.wait_for_selector(".alert-success")
    message = page.inner_text(".alert-success")
    assert all(ref in message for ref in refs), message
    page.goto(f"{url}/cases/{refs[0]}")
    assert "请今天下班前处理完毕并反馈" in page.inner_text("body")

    # the dashboard of last month: charts drawn from the local ECharts, every number a link
    page.goto(url + "/board")
    page.click("nav >> text=统计分析")
    page.wait_for_selector('[data-chart="trend"][data-drawn="1"]')
    page.click("a:has-text('« 上月')")
    page.wait_for_selector('[data-chart="rank_firm"][data-drawn="1"]')
    assert page.locator("canvas").count() >= 4
    # drill down from a firm's satisfaction rate to its cases
    page.click("details:has(table[data-table='rank_firm']) > summary")
    link = page.locator("table[data-table='rank_firm'] a[href*='figure=satisfaction_rate'][href*='slice=firm']").first
    firm_name = page.locator("table[data-table='rank_firm'] tbody tr").first.locator("td").nth(1).inner_text()
    link.click()
    page.wait_for_selector("[data-drill]")
    banner = page.inner_text("[data-drill]")
    assert "满意率" in banner and firm_name in banner
    assert page.locator(".queue-row").count() >= 1

    # download the bulletin from the dashboard
    page.go_back()
    with page.expect_download() as download_info:
        page.click("[data-download=bulletin]")
    download = download_info.value
    target = _artifacts(base) / download.suggested_filename
    download.save_as(target)
    assert target.suffix == ".xlsx" and target.stat().st_size > 5000
    assert not [e for e in errors if "Content Security Policy" in e or "Uncaught" in e], errors
    page.context.close()


@pytest.mark.parametrize("width", list(WIDTHS))
def test_screenshots_of_the_board_dashboard_and_ranking(browser, live, width):
    url, base = live
    page, errors = _page(browser, url, "street1", WIDTHS[width])
    folder = _artifacts(base)
    for name, path, ready in (
        ("board", "/board", "#overdue"),
        ("dashboard", "/reports/dashboard", '[data-chart="trend"][data-drawn="1"]'),
        ("ranking", "/reports/ratings", "table[data-table=ratings]"),
    ):
        page.goto(url + path)
        page.wait_for_selector(ready)
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
        page.screenshot(path=str(folder / f"{name}-{width}-first-screen.png"))
        # nothing sideways at phone width: the page itself does not scroll horizontally
        if width == "phone":
            assert page.evaluate("document.documentElement.scrollWidth") <= WIDTHS["phone"][0] + 5, name
    assert not [e for e in errors if "Uncaught" in e], errors
    page.context.close()
