"""Users and API tokens."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Boolean, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.auth import roles
from app.core.types import UTCDateTime
from app.extensions import db
from app.org.models import Community, Grid, PartyBranch, PropertyFirm, ServiceStation, Street


def new_stamp() -> str:
    """A fresh random session stamp."""
    return secrets.token_hex(16)


class User(UserMixin, db.Model):
    """A staff member. ``role`` decides what they may do, the scope columns which cases they see."""

    __tablename__ = "user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64))
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(32), index=True)
    phone: Mapped[str | None] = mapped_column(String(20))
    email: Mapped[str | None] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="1")
    locale: Mapped[str | None] = mapped_column(String(16))

    station_id: Mapped[int | None] = mapped_column(ForeignKey("service_station.id", ondelete="RESTRICT"), index=True)
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grid.id", ondelete="RESTRICT"), index=True)
    firm_id: Mapped[int | None] = mapped_column(ForeignKey("property_firm.id", ondelete="RESTRICT"), index=True)
    branch_id: Mapped[int | None] = mapped_column(ForeignKey("party_branch.id", ondelete="RESTRICT"), index=True)
    community_id: Mapped[int | None] = mapped_column(ForeignKey("community.id", ondelete="RESTRICT"), index=True)
    street_id: Mapped[int | None] = mapped_column(ForeignKey("street.id", ondelete="RESTRICT"), index=True)

    failed_login_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    #: changes when every session and remember-me cookie of this user must end (password change or
    #: reset, deactivation, role or scope change, "sign out everywhere"); part of every session's id
    session_stamp: Mapped[str] = mapped_column(String(32), default=lambda: new_stamp(), server_default="initial")

    station: Mapped[ServiceStation | None] = relationship()
    grid: Mapped[Grid | None] = relationship()
    firm: Mapped[PropertyFirm | None] = relationship()
    branch: Mapped[PartyBranch | None] = relationship()
    community: Mapped[Community | None] = relationship()
    street: Mapped[Street | None] = relationship()

    # Flask-Login reads ``is_active``; an inactive user cannot log in or use a token.
    @property
    def is_active(self) -> bool:  # type: ignore[override]
        return bool(self.active)

    def set_password(self, password: str) -> None:
        """Hash and store a password (Werkzeug's scrypt unless ``PASSWORD_HASH_METHOD`` says otherwise)."""
        method = current_app.config.get("PASSWORD_HASH_METHOD", "scrypt") if has_app_context() else "scrypt"
        self.password_hash = generate_password_hash(password, method=method)

    def check_password(self, password: str) -> bool:
        return bool(self.password_hash) and check_password_hash(self.password_hash, password)

    @property
    def scope_kind(self) -> str | None:
        """Which scope this user has (``station``, ``grid``, …) or None for administrators."""
        for kind in (roles.STATION, roles.GRID, roles.FIRM, roles.BRANCH, roles.COMMUNITY, roles.STREET):
            if getattr(self, f"{kind}_id") is not None:
                return kind
        return None

    @property
    def scope_object(self):
        kind = self.scope_kind
        return getattr(self, kind) if kind else None

    @property
    def scope_label(self) -> str:
        obj = self.scope_object
        return str(obj) if obj is not None else ""

    @property
    def role_label(self) -> str:
        return roles.role_label(self.role)

    def get_id(self) -> str:
        """Flask-Login's id: ``user:stamp:session`` once :func:`app.auth.sessions.start_session` ran.

        A bare user id is never accepted by the user loader, so a session always names its server-side
        record (see ``app/auth/sessions.py``).
        """
        return getattr(self, "_login_id", None) or f"{self.id}:-:-"

    def has_role(self, *names: str) -> bool:
        return self.role in names

    def __str__(self) -> str:
        return f"{self.display_name} ({self.username})"


class ApiToken(db.Model):
    """A bearer token for the REST API. Only a SHA-256 of the secret is stored."""

    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # shown so a user can tell tokens apart
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, server_default=func.now())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship()

    @staticmethod
    def hash_secret(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


class LoginSession(db.Model):
    """One signed-in browser: the session cookie and the remember-me cookie name this row.

    Logging out revokes it; a remember-me cookie that is used is exchanged for a new row (rotation),
    so a copied cookie stops working at the next use by either party.
    """

    __tablename__ = "login_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(200))

    user: Mapped[User] = relationship()
