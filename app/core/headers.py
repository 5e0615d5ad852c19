"""Security headers on every response, from one ``after_request`` hook (no extra dependency).

* ``Content-Security-Policy``: scripts only from this site, plus a per-request nonce for the few inline
  scripts of the administration screens (Flask-Admin's ``csp_nonce_generator``) — never
  ``'unsafe-inline'`` for scripts, so inline event handlers (``onclick=``) are refused by the browser.
  Styles allow ``'unsafe-inline'``: Bootstrap components and our templates set ``style="…"`` attributes;
  a style cannot run code. ``frame-ancestors 'none'`` (with ``X-Frame-Options: DENY`` for old browsers)
  keeps the resident's sign-off page and every staff page out of other sites' frames.
* ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin`` (the sign-off link's code never
  leaves the site in a Referer), ``Permissions-Policy`` switching off what the product never uses,
  ``Cross-Origin-Opener-Policy: same-origin``.
* ``Strict-Transport-Security`` when ``HSTS_SECONDS`` is set (production sets a year by default).
* Attachments (``cases.attachment``) get a sandboxing policy of their own: a file is shown as an image or
  downloaded, never run as a page of this site.
"""

from __future__ import annotations

import secrets

from flask import Flask, g, request

#: endpoints serving residents' and staff's uploaded files
ATTACHMENT_ENDPOINTS = {"cases.attachment"}
ATTACHMENT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox; frame-ancestors 'none'"
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=(), serial=(), bluetooth=()"


def csp_nonce() -> str:
    """This request's script nonce (created on first use)."""
    nonce = g.get("_csp_nonce")
    if nonce is None:
        nonce = g._csp_nonce = secrets.token_urlsafe(16)
    return nonce


def content_security_policy() -> str:
    script = "'self'"
    if g.get("_csp_nonce"):
        script += f" 'nonce-{g._csp_nonce}'"
    return (
        "default-src 'self'; "
        f"script-src {script}; "
        "style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; "
        "font-src 'self'; "
        "connect-src 'self'; "
        "object-src 'none'; "
        "base-uri 'self'; "
        "form-action 'self'; "
        "frame-ancestors 'none'"
    )


def init_app(app: Flask) -> None:
    """Add the hook; ``HSTS_SECONDS`` (0 = off) sets Strict-Transport-Security."""

    @app.after_request
    def set_security_headers(response):
        headers = response.headers
        if request.endpoint in ATTACHMENT_ENDPOINTS:
            headers["Content-Security-Policy"] = ATTACHMENT_CSP
            if "Content-Disposition" not in headers:
                headers["Content-Disposition"] = "attachment"
            # residents' photos: a shared proxy must not keep a copy for the next visitor
            headers["Cache-Control"] = headers.get("Cache-Control", "").replace("public", "private") or "private"
        else:
            headers.setdefault("Content-Security-Policy", content_security_policy())
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        hsts = int(app.config.get("HSTS_SECONDS") or 0)
        if hsts > 0:
            headers.setdefault("Strict-Transport-Security", f"max-age={hsts}; includeSubDomains")
        return response
