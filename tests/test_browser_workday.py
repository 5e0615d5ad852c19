"""A full working day in a real browser (Chromium through Playwright), at 1366 px and 375 px.

The clerk logs a case by keyboard with a photo and prints the receipt; a second caller's report is
linked (own reference, receipt, code); the grid worker accepts and
dispatches from a phone; the firm returns it once with a reason, then accepts and completes with a
photo; the resident answers "unsatisfied" by typing the short code on /s; the firm completes again;
the resident signs off and the case closes; the second caller signs off with their own code; /track
shows each step for both references. Also: search, scope by URL,
refusals without internal codes, a refresh after a conflict re-submits nothing.

Screenshots of every page at both widths go to ``$KSM_ARTIFACTS`` (default: a temporary directory,
printed at the end); they are not committed.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.browser_support import CHROMIUM, chromium, live_server
from tests.conftest import IS_POSTGRES
from tests.factories import PNG  # a real image: uploads are decoded and re-encoded

pytestmark = [
    pytest.mark.browser,
    pytest.mark.own_app,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed"),
    pytest.mark.skipif(IS_POSTGRES, reason="browser tests run once, on the SQLite pass"),
]

DESKTOP = {"width": 1366, "height": 900}
PHONE = {"width": 375, "height": 812}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with live_server(tmp_path_factory.mktemp("workday")) as served:
        yield served


@pytest.fixture(scope="module")
def browser():
    with chromium() as instance:
        yield instance


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    path = os.environ.get("KSM_ARTIFACTS") or str(tmp_path_factory.mktemp("screenshots"))
    os.makedirs(path, exist_ok=True)
    yield path
    print(f"\nscreenshots: {path}")


class Shots:
    def __init__(self, path):
        self.path = path

    def both(self, page, name):
        """Screenshot the page at desktop and phone width, then restore its size."""
        size = page.viewport_size
        for label, viewport in (("1366", DESKTOP), ("375", PHONE)):
            page.set_viewport_size(viewport)
            page.wait_for_timeout(150)
            page.screenshot(path=os.path.join(self.path, f"{name}-{label}.png"), full_page=True)
        page.set_viewport_size(size)


def _login(browser, url, username, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport)
    page = context.new_page()
    page.goto(url + "/login")
    page.fill("#username", username)
    page.fill("#password", "Demo@2026")
    page.click("main button[type=submit]")
    page.wait_for_url(lambda current: "/login" not in current)  # supervisors land on the overdue board
    return page


def _open_action(page, trigger):
    """Show an action's form (the likely next one is open already)."""
    if not page.locator(f"#act-{trigger}").is_visible():
        page.click(f"[data-action='{trigger}'] button.accordion-button")
        page.wait_for_selector(f"#act-{trigger}.show")
        page.wait_for_timeout(400)


def _state(app, ref):
    from sqlalchemy import select

    from app.cases.models import Case
    from app.extensions import db

    with app.app_context():
        state = db.session.scalar(select(Case.state).where(Case.ref == ref))
        db.session.remove()
        return state


def _events(app, ref, trigger, kind=None):
    from sqlalchemy import func, select

    from app.cases.models import Case, CaseEvent
    from app.extensions import db

    with app.app_context():
        query = select(func.count()).select_from(CaseEvent).join(Case, Case.id == CaseEvent.case_id)
        query = query.where(Case.ref == ref, CaseEvent.kind == kind if kind else CaseEvent.trigger == trigger)
        n = db.session.scalar(query)
        db.session.remove()
        return n


def test_building_type_ahead_by_keyboard(browser, live, artifacts):
    """Typing in the building field filters the buildings of the chosen compound; Enter picks one."""
    _app, url = live
    page = _login(browser, url, "clerk1")
    page.goto(url + "/cases/new")
    page.focus("#compound")
    page.keyboard.press("ArrowDown")
    compound = page.input_value("#compound")
    assert compound
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "building-search"
    visible = (
        "Array.from(document.querySelectorAll('#building option'))"
        ".filter(o => o.value && !o.hidden).map(o => [o.dataset.compound, o.textContent.trim()])"
    )
    everything = page.evaluate(visible)
    assert everything and {c for c, _name in everything} == {compound}  # only this compound's buildings
    page.keyboard.type("2")
    assert page.locator("#building option:checked").inner_text() == "2栋"
    matches = [name for _c, name in page.evaluate(visible)]
    assert matches and len(matches) < len(everything) and all("2" in name for name in matches)
    page.keyboard.type("9x")
    assert page.evaluate(visible) == [] and page.input_value("#building") == ""
    assert page.inner_text("#building-help")  # "no building matches", said in words
    shots = Shots(artifacts)
    shots.both(page, "02b-intake-building-no-match")
    for _ in range(2):
        page.keyboard.press("Backspace")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "unit"
    chosen = page.input_value("#building")
    assert page.locator(f"#building option[value='{chosen}']").inner_text() == "2栋"
    page.focus("#compound")
    page.keyboard.press("ArrowDown")  # another compound: the search is cleared, its own buildings shown
    assert page.input_value("#building-search") == "" and page.input_value("#building") == ""
    other = page.input_value("#compound")
    assert other != compound and {c for c, _name in page.evaluate(visible)} <= {other}
    page.context.close()


def test_a_full_working_day(browser, live, artifacts):
    app, url = live
    shots = Shots(artifacts)

    # --- the clerk logs a case with the keyboard alone (and a photo from the camera) ---------------
    clerk = _login(browser, url, "clerk1")
    shots.both(clerk, "01-clerk-queue")
    clerk.goto(url + "/cases/new")
    keystrokes = 0

    def type_(text):
        nonlocal keystrokes
        clerk.keyboard.type(text)
        keystrokes += len(text)

    def press(key, times=1):
        nonlocal keystrokes
        for _ in range(times):
            clerk.keyboard.press(key)
        keystrokes += times

    assert clerk.evaluate("document.activeElement.id") == "resident_phone"  # no tabbing to the first field
    type_("13955551234")
    press("Tab")
    type_("周女士")
    press("Tab")
    assert clerk.evaluate("document.activeElement.id") == "category-search"
    type_("dt")
    press("Enter")
    assert clerk.input_value("#category") == "lift_fault"  # dt → 电梯故障
    assert "电梯故障" in clerk.inner_text("#category-info")
    assert clerk.evaluate("document.activeElement.id") == "compound"
    press("ArrowDown")  # 阳光花园, the station's first compound
    press("Tab")
    assert clerk.evaluate("document.activeElement.id") == "building-search"
    type_("1")  # type-ahead among the buildings of 阳光花园
    press("Enter")  # 1栋, and on to the unit
    assert clerk.locator("#building option:checked").inner_text() == "1栋"
    type_("2单元502")
    press("Tab")
    type_("电梯停在5楼不动，按钮无反应")
    clerk.set_input_files(
        "#intake-photos", files=[{"name": "lift.png", "mimeType": "image/png", "buffer": PNG}]
    )  # the camera
    clerk.wait_for_selector("#duplicate-hint", state="attached")
    shots.both(clerk, "02-intake-filled")
    press("Tab", 3)  # urgency, channel, photo
    press("Tab")
    assert clerk.evaluate("document.activeElement.type") == "submit"
    press("Enter")
    clerk.wait_for_selector("#case-ref")
    if clerk.locator("#confirm_new").count():  # a similar open case exists: confirm it is new
        clerk.check("#confirm_new")
        clerk.click("#intake-form button[type=submit]")
        clerk.wait_for_selector("#case-ref")
    print(f"\nintake keystrokes: {keystrokes}")
    assert keystrokes <= 60
    ref = clerk.inner_text("#case-ref")
    assert ref.startswith("KSM-") and _state(app, ref) == "grid_assigned"
    assert clerk.locator("#files img").count() == 1  # the photo came with the case
    shots.both(clerk, "03-case-registered")
    with clerk.context.expect_page() as receipt_info:
        clerk.click("#print-receipt")
    receipt = receipt_info.value
    receipt.wait_for_load_state()
    assert receipt.locator("#track-qr svg").count() == 1 and receipt.locator("#sign-qr svg").count() == 1
    code = receipt.inner_text("#signoff-code").strip()
    assert re.fullmatch(r"[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}", code)
    assert receipt.locator("#promise-response").count() == 1 and receipt.locator("#promise-completion").count() == 1
    shots.both(receipt, "04-receipt-80mm")
    receipt.goto(receipt.url + "?paper=a5")
    shots.both(receipt, "05-receipt-a5")
    receipt.close()

    # --- a second caller reports the same lift: linked, with their own reference and receipt ------
    clerk.goto(url + "/cases/new")
    clerk.fill("#resident_phone", "13811112222")
    clerk.fill("#resident_name", "钱先生")
    clerk.fill("#category-search", "dtgz")
    clerk.keyboard.press("Enter")
    clerk.select_option("#compound", index=1)
    clerk.wait_for_selector(f"#duplicate-hint:not([hidden]) a:has-text('{ref}')")  # hinted before submitting
    shots.both(clerk, "06a-duplicate-hint")
    clerk.fill("#description", "1栋电梯又坏了，我住10楼")
    clerk.click("#intake-form button[type=submit]")
    clerk.click(f"[data-link-to='{ref}']")
    clerk.wait_for_selector("#callers")
    assert "钱先生" in clerk.inner_text("#callers")
    with clerk.context.expect_page() as report_receipt_info:
        clerk.click("#print-report-receipt")
    report_receipt = report_receipt_info.value
    report_receipt.wait_for_load_state()
    report_ref = report_receipt.inner_text("#receipt-ref").strip()
    code2 = report_receipt.inner_text("#signoff-code").strip()
    assert report_ref != ref and code2 != code and report_receipt.locator("#joined").count() == 1
    shots.both(report_receipt, "06b-linked-receipt")
    report_receipt.close()
    shots.both(clerk, "06c-case-with-two-callers")

    # --- search: last 4 digits, a name, a word of the description ---------------------------------
    for q in ("1234", "周女士", "按钮无反应"):
        clerk.goto(url + "/cases?q=" + q)
        assert clerk.locator(f".queue-row[data-ref='{ref}']").count() == 1, q
    shots.both(clerk, "06-search")

    # --- the grid worker accepts and dispatches from a phone --------------------------------------
    grid = _login(browser, url, "grid1", PHONE)
    row = grid.locator(f".queue-row[data-ref='{ref}']")
    assert row.count() == 1 and row.locator(".countdown").inner_text().strip()
    assert grid.evaluate("document.documentElement.scrollWidth") <= 380  # cards, no sideways scrolling
    shots.both(grid, "07-grid-queue")
    row.locator("a").click()
    grid.wait_for_selector("#case-ref")
    top = grid.locator("#act-grid_accept button[type=submit]").bounding_box()["y"]
    assert top < 700  # the next action is on the first screen of a phone
    assert grid.locator("a[href='tel:13955551234']").count() == 1  # tap to call the caller
    shots.both(grid, "08-grid-case")
    grid.click("#act-grid_accept button[type=submit]")
    grid.wait_for_selector(".alert-success")
    _open_action(grid, "dispatch_to_firm")
    grid.fill("#dispatch_to_firm-note", "已核实，电梯停用")
    grid.click("#act-dispatch_to_firm button[type=submit]")
    grid.wait_for_selector(".alert-success")
    assert _state(app, ref) == "firm_dispatched"

    # --- another firm cannot open it by URL -------------------------------------------------------
    firm2 = _login(browser, url, "firm2", PHONE)
    assert firm2.goto(f"{url}/cases/{ref}").status == 404
    firm2.context.close()

    # --- the firm returns it once with a reason ---------------------------------------------------
    firm = _login(browser, url, "firm1", PHONE)
    firm.goto(f"{url}/cases/{ref}")
    assert firm.locator("a[href^='tel:']").count() == 0 and firm.locator("#print-receipt").count() == 0
    shots.both(firm, "09-firm-case")
    _open_action(firm, "firm_return")
    dialogs = []
    firm.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))
    firm.fill("#firm_return-note", "此梯维保单位为厂家")
    firm.click("#act-firm_return button[type=submit]")
    firm.wait_for_selector("#firm_return-reason.is-invalid")
    assert dialogs == []  # no "are you sure?" before the form is valid
    firm.select_option("#firm_return-reason", "other")
    firm.click("#act-firm_return button[type=submit]")
    firm.wait_for_selector(".alert-success")
    assert len(dialogs) == 1 and _state(app, ref) == "grid_handling"

    grid.reload()
    _open_action(grid, "dispatch_to_firm")
    grid.click("#act-dispatch_to_firm button[type=submit]")
    grid.wait_for_selector(".alert-success")

    # --- a refresh after a conflict re-submits nothing --------------------------------------------
    firm.goto(f"{url}/cases/{ref}")
    stale = firm.context.new_page()
    stale.goto(f"{url}/cases/{ref}")
    firm.click("#act-firm_accept button[type=submit]")
    firm.wait_for_selector(".alert-success")
    stale.click("#act-firm_accept button[type=submit]")
    stale.wait_for_selector(".alert-danger")
    assert stale.url.split("#")[0].endswith(f"/cases/{ref}")  # redirected: the page is a GET
    shots.both(stale, "10-conflict")
    stale.reload()
    assert stale.locator(".alert-danger").count() == 0 and _events(app, ref, "firm_accept") == 1
    stale.close()

    # --- the firm completes with a photo ----------------------------------------------------------
    firm.reload()
    _open_action(firm, "firm_complete")
    assert firm.get_attribute("#firm_complete-photos", "accept") == "image/*"
    firm.fill("#firm_complete-result", "已通知厂家更换主板，电梯恢复运行")
    firm.set_input_files("#firm_complete-photos", files=[{"name": "done.png", "mimeType": "image/png", "buffer": PNG}])
    firm.click("#act-firm_complete button[type=submit]")
    firm.wait_for_selector(".alert-success")
    assert _state(app, ref) == "awaiting_signoff"
    shots.both(firm, "11-firm-queue-after")

    # --- the resident types the short code on /s and is unsatisfied -------------------------------
    resident = browser.new_context(viewport=PHONE).new_page()
    resident.goto(url + "/s")
    shots.both(resident, "12-resident-code")
    resident.fill("#code", code.lower().replace("-", " "))
    resident.click("main button[type=submit]")
    resident.wait_for_selector("#what-was-done")
    assert "已通知厂家更换主板" in resident.inner_text("#what-was-done")
    assert resident.locator("#what-was-done img").count() == 1
    shots.both(resident, "13-resident-signoff")
    resident.click("label[for=contacted-yes]")
    resident.click("label[for=resolved-no]")
    resident.click("main button[type=submit]")  # no satisfaction chosen: refused with labels only
    body = resident.inner_text("main")
    assert "满意" in body and "satisfied (" not in body and "unsatisfied" not in body
    resident.click("label[for=contacted-yes]")
    resident.click("label[for=resolved-no]")
    resident.click("label[for=satisfaction-unsatisfied]")
    resident.click("main button[type=submit]")
    resident.wait_for_selector("text=重新办理")
    assert _state(app, ref) == "firm_processing"

    # --- the firm completes again; the resident signs off by the link; the case closes ------------
    firm.reload()
    _open_action(firm, "firm_complete")
    firm.fill("#firm_complete-result", "厂家已更换主板并调试，运行正常")
    firm.click("#act-firm_complete button[type=submit]")
    firm.wait_for_selector(".alert-success")
    resident.goto(f"{url}/s/{code.replace('-', '')}")
    resident.click("label[for=contacted-yes]")
    resident.click("label[for=resolved-yes]")
    resident.click("label[for=satisfaction-satisfied]")
    resident.click("main button[type=submit]")
    resident.wait_for_selector("text=已办结")
    assert _state(app, ref) == "closed"
    # the second caller signs off with their own code
    resident.goto(url + "/s")
    resident.fill("#code", code2)
    resident.click("main button[type=submit]")
    resident.wait_for_selector("#what-was-done")
    resident.click("label[for=contacted-yes]")
    resident.click("label[for=resolved-yes]")
    resident.click("label[for=satisfaction-basic]")
    resident.click("main button[type=submit]")
    resident.wait_for_selector(f"text={report_ref}")
    assert _events(app, ref, None, kind="report_signoff") == 1

    # --- /track shows each step -------------------------------------------------------------------
    resident.goto(url + "/track")
    resident.fill("#ref", ref.removeprefix("KSM-"))
    resident.fill("#last4", "1234")
    resident.click("main button[type=submit]")
    resident.wait_for_selector("#track-result")
    steps = resident.locator(".resident-timeline .step")
    assert [steps.nth(i).get_attribute("data-status") for i in range(steps.count())] == ["done"] * steps.count()
    assert "物业企业已将诉求退回网格员" in resident.inner_text("#returns")
    assert "13905662001" not in resident.content()  # never a person's phone
    shots.both(resident, "14-track")
    resident.goto(url + "/track")
    resident.fill("#ref", report_ref)
    resident.fill("#last4", "2222")
    resident.click("main button[type=submit]")
    resident.wait_for_selector("#joined")
    steps = resident.locator(".resident-timeline .step")
    assert [steps.nth(i).get_attribute("data-status") for i in range(steps.count())] == ["done"] * steps.count()
    shots.both(resident, "14b-track-second-caller")

    # --- closed cases only when asked; the supervisor's queue in English --------------------------
    clerk.goto(url + "/cases")
    assert clerk.locator(f".queue-row[data-ref='{ref}']").count() == 0
    clerk.goto(url + "/cases?state=closed")
    assert clerk.locator(f".queue-row[data-ref='{ref}']").count() == 1
    supervisor = _login(browser, url, "supervisor1")
    supervisor.goto(url + "/cases")
    supervisor.click("button[name=locale][value=en]")
    supervisor.wait_for_selector("html[lang=en]")
    shots.both(supervisor, "15-supervisor-queue-en")
    supervisor.goto(f"{url}/cases/{ref}")
    assert supervisor.locator("#timer").count() == 0  # no empty time-limit card on a closed case
    shots.both(supervisor, "16-closed-case-en")
    for page in (clerk, grid, firm, supervisor, resident):
        page.context.close()


@pytest.mark.parametrize("username", ["street1", "admin"])
def test_the_menu_fits_one_line_on_a_laptop_in_both_languages(browser, live, username):
    """The longest menus (a street supervisor's, the administrator's) at 1366 px: every link on one line,
    none broken inside, nothing scrolling sideways; the role, not shown in the bar at this width, is in the
    account menu."""
    _, url = live
    page = _login(browser, url, username)
    try:
        for language in ("en", "zh_Hans_CN"):  # ends in the default language, as the other tests expect
            page.click(f"button[name=locale][value={language}]")
            page.wait_for_load_state()
            links = page.locator(".app-navbar .navbar-nav > .nav-item > .nav-link")
            boxes = [links.nth(i).bounding_box() for i in range(links.count())]
            assert len(boxes) >= 7
            middles = [box["y"] + box["height"] / 2 for box in boxes]
            assert max(middles) - min(middles) < 20, f"{language}: the menu takes more than one line"
            assert max(box["height"] for box in boxes) < 50, f"{language}: a link breaks over two lines"
            assert page.evaluate("document.documentElement.scrollWidth") <= DESKTOP["width"]
            role = page.locator(".app-navbar .dropdown-toggle .badge")
            assert not role.is_visible()  # not in the bar at this width …
            page.click(".app-navbar .dropdown-toggle")
            label = role.text_content().strip()
            assert label and page.locator(".app-navbar .dropdown-menu").get_by_text(label, exact=True).is_visible()
            page.keyboard.press("Escape")
    finally:
        page.context.close()
