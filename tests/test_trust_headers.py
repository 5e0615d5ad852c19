"""Defect 4: security headers, sandboxed attachments and re-encoded images."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from app import create_app
from app.cases.models import Attachment, Case
from app.extensions import db
from config import ProductionConfig
from tests.conftest import TEST_DATABASE_URL, csrf_token
from tests.factories import PNG, make_case

TEMPLATES = Path(__file__).resolve().parent.parent / "app" / "templates"
INLINE_HANDLER = re.compile(r"(?<![\w.-])on[a-z]+\s*=\s*[\"']", re.I)
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I)


def _csp(response) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part.strip() for part in policy.split(";") if part.strip()}


def _assert_page_headers(response):
    csp = _csp(response)
    assert "'unsafe-inline'" not in csp["script-src"] and "'self'" in csp["script-src"]
    assert csp["frame-ancestors"] == "frame-ancestors 'none'"
    assert csp["object-src"] == "object-src 'none'"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "camera=()" in response.headers["Permissions-Policy"]


def test_login_and_signoff_pages_carry_the_headers(client, app):
    _assert_page_headers(client.get("/login"))
    ref = make_case("awaiting_signoff")
    with app.app_context():
        token = db.session.scalar(select(Case.signoff_token).where(Case.ref == ref))
    page = client.get(f"/s/{token}")
    assert page.status_code == 200
    _assert_page_headers(page)
    assert "Strict-Transport-Security" not in page.headers  # development and tests: plain HTTP


def test_error_pages_and_api_answers_carry_them_too(client):
    _assert_page_headers(client.get("/no-such-page"))
    assert client.get("/api/v1/cases").headers["X-Content-Type-Options"] == "nosniff"


def test_production_adds_hsts_and_secure_cookies(tmp_path):
    url = TEST_DATABASE_URL or f"sqlite:///{tmp_path / 'prod.db'}"
    app = create_app(ProductionConfig, SECRET_KEY="x" * 40, SQLALCHEMY_DATABASE_URI=url)
    client = app.test_client()
    response = client.get("/login", base_url="https://ksm.example")
    assert response.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    _assert_page_headers(response)
    assert app.config["REMEMBER_COOKIE_SECURE"] and app.config["SESSION_COOKIE_SECURE"]
    assert app.config["REMEMBER_COOKIE_SAMESITE"] == "Lax" and app.config["REMEMBER_COOKIE_HTTPONLY"]


def test_admin_inline_scripts_carry_the_requests_nonce_and_no_inline_handlers(client, auth):
    auth.login("admin")
    for path in ("/admin/user/", "/admin/category/", "/admin/apitoken/", "/admin/user/new/"):
        response = client.get(path)
        assert response.status_code == 200, path
        nonce = re.search(r"'nonce-([^']+)'", _csp(response)["script-src"]).group(1)
        body = response.get_data(as_text=True)
        for tag in INLINE_SCRIPT.findall(body):
            assert f'nonce="{nonce}"' in tag, (path, tag)
        assert not INLINE_HANDLER.search(body), (path, INLINE_HANDLER.search(body).group(0))
        # Flask-Admin's inert "javascript:void(0)" tabs stay; static/js/admin.js cancels their clicks
        assert not re.search(r"javascript:(?!void\(0\))", body), path
    assert "data-admin-action" in client.get("/admin/user/").get_data(as_text=True)


def test_templates_outside_cases_have_no_inline_script_or_handler():
    offenders = []
    for path in TEMPLATES.rglob("*.html"):
        if "cases" in path.relative_to(TEMPLATES).parts:
            continue  # rewritten by the "workday" branch; listed by the browser test meanwhile
        text = path.read_text(encoding="utf-8")
        if INLINE_HANDLER.search(text) or INLINE_SCRIPT.search(text) or "javascript:" in text:
            offenders.append(str(path.relative_to(TEMPLATES)))
    assert offenders == []


# --- attachments --------------------------------------------------------------------------------------


def _upload(client, auth, ref, data: bytes, name: str):
    return client.post(
        f"/cases/{ref}/attachments",
        data={"csrf_token": csrf_token(client, f"/cases/{ref}"), "photos": (io.BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def _jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (8, 8), (10, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    gps = {1: "N", 2: (30.0, 40.0, 12.5), 3: "E", 4: (117.0, 29.0, 3.2)}
    exif[0x8825] = gps
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(0x8825), "the fixture really has GPS"
    return data


def _stored(app, ref) -> list[Attachment]:
    with app.app_context():
        case_id = db.session.scalar(select(Case.id).where(Case.ref == ref))
        return list(db.session.scalars(select(Attachment).where(Attachment.case_id == case_id)))


def test_uploaded_photo_loses_its_gps_and_attachment_is_sandboxed(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    assert _upload(client, auth, ref, _jpeg_with_gps(), "现场.jpg").status_code == 302
    (row,) = _stored(app, ref)
    served = client.get(f"/cases/{ref}/attachments/{row.id}")
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    exif = Image.open(io.BytesIO(served.data)).getexif()
    assert not exif.get_ifd(0x8825) and 0x010F not in exif
    assert served.headers["Content-Disposition"].startswith("inline")
    policy = served.headers["Content-Security-Policy"]
    assert "sandbox" in policy and "default-src 'none'" in policy
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert "private" in served.headers["Cache-Control"] and "public" not in served.headers["Cache-Control"]


def test_html_appended_to_an_image_is_dropped(client, auth, app):
    ref = make_case("firm_processing")
    auth.login("firm1")
    polyglot = PNG + b"<html><script>alert(document.cookie)</script></html>"
    assert _upload(client, auth, ref, polyglot, "x.png").status_code == 302
    (row,) = _stored(app, ref)
    served = client.get(f"/cases/{ref}/attachments/{row.id}")
    assert b"<script" not in served.data and served.data.startswith(b"\x89PNG")


@pytest.mark.parametrize(
    "data", [b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, b"\xff\xd8\xff" + b"<html>" * 20, b"GIF89a<svg onload=alert(1)>"]
)
def test_a_signature_followed_by_junk_is_refused(client, auth, app, data):
    ref = make_case("firm_processing")
    auth.login("firm1")
    response = _upload(client, auth, ref, data, "fake.png")
    # refused, and back on the case page with the message (post/redirect/get: a refresh re-sends nothing)
    assert response.status_code == 303
    assert "不是可读取的" in client.get(response.headers["Location"]).get_data(as_text=True)
    assert _stored(app, ref) == []
