"""The receipt and the resident pages: QR codes, the short sign-off code, tracking with a timeline."""

from __future__ import annotations

import io
import re

from app.cases import services
from tests.conftest import csrf_token
from tests.factories import PNG, load, make_case


def _code(app, ref):
    with app.app_context():
        return load(ref).signoff_token


def test_receipt_has_qr_codes_promises_station_and_a_short_code(client, auth, app):
    ref = make_case("grid_assigned")
    code = _code(app, ref)
    assert len(code) == 8 and not set(code) & set("0O1IlL") and code == code.upper()
    auth.login("clerk1")
    body = client.get(f"/cases/{ref}/receipt").get_data(as_text=True)
    assert body.count("<svg") == 2 and 'class="segno"' in body  # QR codes made on the server
    assert f"{code[:4]}-{code[4:]}" in body
    assert 'id="promise-response"' in body and 'id="promise-completion"' in body
    assert 'id="station"' in body and "0566" in body  # the station's name and phone
    assert f"/track?ref={ref}" in body
    assert "onclick" not in body and "<style" not in body  # CSP: no inline code or styles
    a5 = client.get(f"/cases/{ref}/receipt?paper=a5").get_data(as_text=True)
    assert "receipt-a5.css" in a5 and "receipt-80mm.css" in body
    assert client.get("/static/css/receipt-80mm.css").get_data(as_text=True).count("80mm") >= 1
    auth.logout()
    auth.login("firm1")
    assert client.get(f"/cases/{ref}/receipt").status_code in (403, 404)


def test_resident_types_the_short_code_and_sees_what_was_done(client, app, auth):
    ref = make_case("firm_processing")
    auth.login("firm1")
    client.post(
        f"/cases/{ref}/actions/firm_complete",
        data={
            "csrf_token": csrf_token(client, f"/cases/{ref}"),
            "result": "已更换阀门，地面已清理",
            "photos": [(io.BytesIO(PNG), "after.png")],
        },
        content_type="multipart/form-data",
    )
    auth.logout()
    code = _code(app, ref)
    token = csrf_token(client, "/s")
    typed = f"{code[:4].lower()} {code[4:].lower()}"  # lower case, with a space
    response = client.post("/s", data={"csrf_token": token, "code": typed})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/s/{code}")
    page = client.get(f"/s/{code}").get_data(as_text=True)
    assert page.index("已更换阀门") < page.index('name="satisfaction"')  # what was done comes first
    assert "😀" in page and "🙁" in page
    photo = re.search(rf'src="(/s/{code}/photos/\d+)"', page).group(1)
    assert client.get(photo).status_code == 200
    assert client.get(f"/s/{code}/photos/999999").status_code == 404
    # a wrong code is refused with a message, never a 500
    wrong = client.post("/s", data={"csrf_token": token, "code": "ZZZZ-ZZZZ"})
    assert wrong.status_code == 404 and "is-invalid" in wrong.get_data(as_text=True)
    empty = client.post("/s", data={"csrf_token": token, "code": ""})
    assert empty.status_code == 422
    # the satisfaction answers are labels, never codes
    missing = client.post(f"/s/{code}", data={"csrf_token": token, "contacted": "yes", "resolved": "yes"})
    text = missing.get_data(as_text=True)
    assert missing.status_code == 422 and "满意、基本满意、不满意" in text and "satisfied (" not in text


def test_track_with_or_without_prefix_shows_a_timeline_and_confirm_now(client, app):
    ref = make_case("awaiting_signoff", resident_phone="13812345678")
    token = csrf_token(client, "/track")
    for typed in (ref, ref.removeprefix("KSM-"), ref.lower()):
        page = client.post("/track", data={"csrf_token": token, "ref": typed, "last4": "5678"})
        assert page.status_code == 200, typed
    body = page.get_data(as_text=True)
    steps = re.findall(r'data-step="([a-z]+)" data-status="([a-z]+)"', body)
    assert steps[0] == ("received", "done") and ("signoff", "current") in steps
    assert f"/s/{_code(app, ref)}" in body  # confirm now
    assert "13905662001" not in body and "王磊" not in body  # never a person's name or phone
    assert client.get(f"/track?ref={ref}").get_data(as_text=True).count(ref) >= 1  # QR prefill


def test_track_explains_returns_in_plain_words(client, auth, app):
    ref = make_case("firm_dispatched")
    with app.app_context():
        from app.extensions import db
        from tests.factories import user

        services.fire(load(ref), "firm_return", user("firm1"), inputs={"reason": "wrong_location", "note": "地址不对"})
        db.session.commit()
    token = csrf_token(client, "/track")
    body = client.post("/track", data={"csrf_token": token, "ref": ref, "last4": "5678"}).get_data(as_text=True)
    assert 'id="returns"' in body and "wrong_location" not in body
    assert ("grid", "current") in re.findall(r'data-step="([a-z]+)" data-status="([a-z]+)"', body)
    assert "物业" in body


def test_a_new_code_never_reuses_one_in_use(app, monkeypatch):
    taken = make_case("grid_assigned")
    with app.app_context():
        used = load(taken).signoff_token
        codes = iter([used, "ZZZZ2222"])
        monkeypatch.setattr(services, "new_signoff_code", lambda: next(codes))
        assert services.unique_signoff_code() == "ZZZZ2222"


def test_an_intake_whose_fresh_code_is_taken_gets_another(app, monkeypatch):
    """The intake checks its fresh code together with the new id and reference (PostgreSQL) or on its own
    (SQLite); a clash, however rare, must not give two cases one code."""
    taken = make_case("grid_assigned")
    with app.app_context():
        used = load(taken).signoff_token
    codes = iter([used, "ZZZZ3333"])
    monkeypatch.setattr(services, "new_signoff_code", lambda: next(codes))
    second = make_case("grid_assigned")
    with app.app_context():
        assert load(second).signoff_token == "ZZZZ3333"
        assert load(taken).signoff_token == used
