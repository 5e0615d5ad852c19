"""Structured logs (issue 12): one JSON line per request with a request id; no residents' phone numbers.

- Every request gets an id: the proxy's ``X-Request-ID`` when it is a sane token (nginx
  ``$request_id``), else a new one. It is returned in the ``X-Request-ID`` response header and put
  on every log record written while the request runs, so a request's lines can be found together.
- After each request the logger ``ksm.request`` writes one line: time, request id, method, endpoint,
  path, status, duration, user id, client address. The query string is not logged (searches carry
  phone numbers and names); only its parameter names are.
- With ``LOG_FORMAT=json`` (the default in production) every log record of the process is one JSON
  object per line. Whatever the format, a filter masks mobile numbers in every message
  (``13812345678`` → ``138****5678``): descriptions and notification texts quoted in logs may contain
  one.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from flask import Flask, g, has_request_context, request

log = logging.getLogger("ksm.request")
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MOBILE_RE = re.compile(r"(?<!\d)(1[3-9]\d)(\d{4})(\d{4})(?!\d)")


def mask_phones(text: str) -> str:
    """``13812345678`` → ``138****5678`` anywhere in ``text``."""
    return MOBILE_RE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", text)


def current_request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class RedactingFilter(logging.Filter):
    """Masks phone numbers in the message and adds ``request_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is logged as it is
            return True
        masked = mask_phones(message)
        if masked != message:
            record.msg, record.args = masked, None
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if getattr(record, "request_id", None):
            entry["request_id"] = record.request_id
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exc"] = mask_phones(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(app: Flask) -> None:
    """Attach the phone-masking filter (always) and the JSON formatter (``LOG_FORMAT=json``) to the
    root logger's handlers."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
    json_format = (app.config.get("LOG_FORMAT") or "").lower() == "json"
    for handler in root.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
        if json_format:
            handler.setFormatter(JsonFormatter())
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def init_app(app: Flask) -> None:
    if not app.testing:  # tests capture records themselves
        configure_logging(app)

    @app.before_request
    def _start():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response):
        started = g.get("request_started")
        if started is None:
            return response
        response.headers["X-Request-ID"] = g.request_id
        user = g.get("_login_user")  # Flask-Login's user when it was loaded; never load it here
        fields = {
            "method": request.method,
            "endpoint": request.endpoint,
            "path": mask_phones(request.path),
            "query_keys": sorted(request.args.keys()) or None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
            "user_id": getattr(user, "id", None),
            "remote_addr": request.remote_addr,
        }
        log.info(
            "%s %s %s %.1fms",
            request.method,
            fields["path"],
            response.status_code,
            fields["duration_ms"],
            extra={"fields": fields, "request_id": g.request_id},
        )
        return response
