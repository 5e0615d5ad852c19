"""``Idempotency-Key``: the same key and body return the same result, never a second case.

The record is inserted *before* the work, inside a savepoint. Its unique constraint (user, key) makes
a concurrent request with the same key wait for the first one's transaction: when the first commits,
the second fails on the constraint, reads the stored result and replays it; when the first rolls back
(e.g. invalid input), nothing is stored and the second does the work itself.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from flask_babel import gettext as _
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.errors import ApiError, json_response
from app.api.models import IdempotencyRecord
from app.core.timeutil import utcnow
from app.extensions import db

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_RE = re.compile(r"^[\x21-\x7e]{1,100}$")


def read_key(raw: str | None) -> str | None:
    """The header's key, or None when absent. Raises :class:`ApiError` 422 for a malformed key."""
    if raw is None:
        return None
    key = raw.strip()
    if not KEY_RE.match(key):
        raise ApiError(
            422,
            "invalid_idempotency_key",
            _("An Idempotency-Key has 1–100 visible ASCII characters, e.g. a UUID."),
            field=HEADER,
        )
    return key


def fingerprint(method: str, path: str, body: Any) -> str:
    """A hash of what the request asks for; JSON key order and spacing do not matter."""
    canonical = json.dumps([method, path, body], sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _stored(user_id: int, key: str) -> IdempotencyRecord | None:
    return db.session.scalar(
        select(IdempotencyRecord)
        .where(IdempotencyRecord.user_id == user_id, IdempotencyRecord.key == key)
        .execution_options(populate_existing=True)
    )


def claim(user_id: int, key: str, request_hash: str) -> tuple[IdempotencyRecord, bool]:
    """Reserve ``key`` for this request; returns the record and whether it is new (do the work).

    A record that is not new holds a stored result to replay. Raises :class:`ApiError` 422
    (``idempotency_key_reused``) when the key was used with a different request, 409 when the first
    request with the key has not finished.
    """
    record = _stored(user_id, key)
    if record is None:
        record = IdempotencyRecord(user_id=user_id, key=key, request_hash=request_hash, created_at=utcnow())
        try:
            with db.session.begin_nested():
                db.session.add(record)
                db.session.flush()
        except IntegrityError:
            # a concurrent request with the same key committed first: use its result
            record = _stored(user_id, key)
            if record is None:  # pragma: no cover - it committed, so it is there
                raise _in_progress() from None
        else:
            return record, True
    if record.request_hash != request_hash:
        raise ApiError(
            422,
            "idempotency_key_reused",
            _("This Idempotency-Key was already used for a different request. Use a new key for a new case."),
            field=HEADER,
        )
    if record.status_code is None:  # pragma: no cover - records are completed in the same transaction
        raise _in_progress()
    return record, False


def _in_progress() -> ApiError:
    return ApiError(
        409, "idempotency_in_progress", _("A request with this Idempotency-Key is still running; retry shortly.")
    )


def complete(record: IdempotencyRecord, status: int, body: dict[str, Any], case_id: int | None) -> None:
    """Store the result of the work done under ``record``'s key (same transaction as the work)."""
    record.status_code = status
    record.response_body = body
    record.case_id = case_id
    db.session.flush()


def replay(record: IdempotencyRecord, headers: dict[str, str] | None = None):
    """The stored response again, marked ``Idempotent-Replayed: true``."""
    return json_response(record.response_body, record.status_code or 200, {**(headers or {}), REPLAYED_HEADER: "true"})
