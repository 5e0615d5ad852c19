"""Bearer-token authentication for the REST API.

A token acts with its owner's role and scope: every call sees and changes exactly what the owner
would in the web interface.
"""

from __future__ import annotations

from flask import request
from flask_babel import gettext as _

from app.api.errors import ApiError
from app.auth.models import User
from app.auth.services import user_for_token

CHALLENGE = 'Bearer realm="api"'


def bearer_user() -> User:
    """The active user of the request's ``Authorization: Bearer TOKEN``.

    Raises :class:`ApiError` 401 (with a ``WWW-Authenticate`` challenge) when the header is missing,
    malformed, or names an unknown, revoked or disabled token. Records the token's last use.
    """
    header = request.headers.get("Authorization", "")
    scheme, _sep, secret = header.strip().partition(" ")
    if not header.strip():
        raise ApiError(
            401,
            "unauthorized",
            _("Send an API token: Authorization: Bearer YOUR_TOKEN (create one on your profile page)."),
            headers={"WWW-Authenticate": CHALLENGE},
        )
    secret = secret.strip()
    user = None
    if scheme.lower() == "bearer" and secret and "\x00" not in secret:
        user = user_for_token(secret)
    if user is None:
        raise ApiError(
            401,
            "invalid_token",
            _("This API token is unknown, revoked or belongs to a disabled account."),
            headers={"WWW-Authenticate": CHALLENGE + ', error="invalid_token"'},
        )
    return user
