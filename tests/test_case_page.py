"""The case page for phone-first handling and clean refusals."""

from __future__ import annotations

import re

from tests.conftest import csrf_token
from tests.factories import make_case


def test_next_action_first_destructive_last_and_set_apart(client, auth):
    ref = make_case("grid_handling")
    auth.login("grid1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    actions = re.findall(r'data-action="([a-z_]+)"', body)
    assert actions[-1] == "close_invalid" and actions[0] != "close_invalid"
    # on a phone the page is one column: the actions come before the diagram and the history
    assert body.index('id="actions"') < body.index('id="workflow"') < body.index('id="history"')
    assert 'class="mt-3 pt-2 border-top danger-actions"' in body
    # the first likely action is open, with no confirmation; the destructive one asks, after validation (JS)
    first = re.search(rf'id="act-{actions[0]}" class="accordion-collapse collapse ([a-z]*)', body).group(1)
    assert first == "show"
    assert re.search(rf'action="/cases/{ref}/actions/close_invalid"[^>]*data-confirm=', body)
    assert "onsubmit=" not in body and "onclick=" not in body  # no inline handlers (CSP)
    # tap to call the resident
    assert 'href="tel:13812345678"' in body


def test_firm_sees_no_phone_link_and_no_print_button(client, auth):
    ref = make_case("firm_processing")
    auth.login("firm1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert "tel:" not in body and 'id="print-receipt"' not in body
    assert 'accept="image/*" capture="environment"' in body  # completion photos from the camera
    auth.logout()
    auth.login("clerk1")
    assert 'id="print-receipt"' in client.get(f"/cases/{ref}").get_data(as_text=True)


def test_closed_case_has_no_empty_time_limit_card(client, auth):
    ref = make_case("closed")
    auth.login("supervisor1")
    body = client.get(f"/cases/{ref}").get_data(as_text=True)
    assert 'id="timer"' not in body and "已办结" in body


def test_refresh_after_a_conflict_does_not_resubmit(client, auth, app):
    from tests.factories import load

    ref = make_case("grid_assigned")
    auth.login("grid1")
    token = csrf_token(client, f"/cases/{ref}")
    with app.app_context():
        version = load(ref).version
    first = client.post(f"/cases/{ref}/actions/grid_accept", data={"csrf_token": token, "version": version})
    assert first.status_code == 302
    stale = client.post(f"/cases/{ref}/actions/grid_accept", data={"csrf_token": token, "version": version})
    assert stale.status_code == 303  # the conflict page is a GET of the case page: F5 re-sends nothing
    page = client.get(stale.headers["Location"])
    assert page.status_code == 200 and "网格员处置中" in page.get_data(as_text=True)
    with app.app_context():
        from app.cases import services

        case = load(ref)
        assert [e.trigger for e in services.events_of(case)].count("grid_accept") == 1
