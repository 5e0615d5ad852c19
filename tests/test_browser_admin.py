"""The administration in the app's own look, in a real browser: the shared header and language switch,
and the user form's scope fields that follow the chosen role (static/js/admin.js)."""

from __future__ import annotations

import os

import pytest

from tests.conftest import IS_POSTGRES
from tests.test_browser import CHROMIUM
from tests.test_browser_workday import PHONE, Shots, _login, artifacts, browser, live  # noqa: F401 (fixtures)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.own_app,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Chromium is not installed"),
    pytest.mark.skipif(IS_POSTGRES, reason="browser tests run once, on the SQLite pass"),
]

SCOPES = ("station", "grid", "firm", "branch", "community", "street")


def _choose_role(page, role):
    """What Select2 (Flask-Admin's select widget) does when a role is picked: set it, fire "change"."""
    page.evaluate("role => window.jQuery('#role').val(role).trigger('change')", role)


def _visible_scopes(page):
    """The scope fields whose form group is shown (Select2 hides the native selects themselves)."""
    groups = {kind: page.locator(f"[data-scope-field={kind}]") for kind in SCOPES}
    assert all(group.count() == 1 for group in groups.values())
    return {kind for kind, group in groups.items() if group.is_visible()}


def test_admin_has_the_app_header_and_scope_fields_follow_the_role(browser, live, artifacts):  # noqa: F811
    _app, url = live
    shots = Shots(artifacts)
    page = _login(browser, url, "admin")
    page.goto(url + "/admin/timelimitpolicy/")
    assert page.locator("#app-header").is_visible() and page.locator("#language-switch").is_visible()
    assert "个工作小时" in page.inner_text("#limit-grid")
    shots.both(page, "20-admin-time-limits")
    page.click("#language-switch button[value=en]")
    page.wait_for_selector("#limit-grid")
    assert "working hours" in page.inner_text("#limit-grid") and "Urgent" in page.inner_text("#limit-grid")
    page.click("#language-switch button[value=zh_Hans_CN]")
    page.wait_for_selector("#limit-grid")

    page.goto(url + "/admin/user/new/")
    assert page.input_value("#role") == "clerk" and _visible_scopes(page) == {"station"}  # the first role
    _choose_role(page, "grid_worker")
    assert _visible_scopes(page) == {"grid"}
    _choose_role(page, "supervisor")
    assert _visible_scopes(page) == {"community", "street"}
    _choose_role(page, "clerk")
    assert _visible_scopes(page) == {"station"}
    page.fill("#username", "newclerk")
    shots.both(page, "21-admin-user-form")
    _choose_role(page, "admin")
    assert _visible_scopes(page) == set()

    # the organisation import: a file with a bad row, checked by a dry run, errors named by row
    page.goto(url + "/admin/org-import/")
    bad = "街道,社区,小区,物业公司,合同开始日期\n江口街道,滨江社区,滨江花园,滨江物业,2025-13-01\n"
    page.set_input_files("#file", files=[{"name": "org.csv", "mimeType": "text/csv", "buffer": bad.encode()}])
    page.click("#org-import-form button[type=submit]")
    page.wait_for_selector("#import-errors")
    assert page.locator("#import-errors tr[data-row='2']").count() == 1
    shots.both(page, "22-admin-org-import-errors")
    page.context.close()
