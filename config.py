"""Configuration classes read from the environment (see README "Environment")."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent

#: The development key. ProductionConfig refuses to start with it.
DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me"


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def _env_weights(name: str) -> dict[str, float] | None:
    """Three comma-separated weights for response, resolution and satisfaction, or None."""
    value = os.environ.get(name)
    if not value:
        return None
    parts = [float(p) for p in value.split(",")]
    if len(parts) != 3 or any(p < 0 for p in parts):
        raise ValueError(f"{name} must be three non-negative numbers, e.g. 0.1,0.5,0.4")
    return dict(zip(("response", "resolution", "satisfaction"), parts, strict=True))


class Config:
    """Defaults shared by every environment."""

    SECRET_KEY = os.environ.get("SECRET_KEY") or DEV_SECRET_KEY
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or ("sqlite:///" + str(BASE_DIR / "instance" / "app.db"))
    SQLALCHEMY_ENGINE_OPTIONS: dict = {"pool_pre_ping": True}
    APP_TIMEZONE = os.environ.get("APP_TIMEZONE") or "Asia/Shanghai"
    #: ``embedded`` runs the escalation scheduler inside the web process (dev server only);
    #: ``off`` leaves it to ``flask scheduler``.
    SCHEDULER = os.environ.get("SCHEDULER") or "off"
    UPLOAD_DIR = os.environ.get("UPLOAD_DIR") or str(BASE_DIR / "instance" / "uploads")
    MAX_CONTENT_LENGTH = _env_int("MAX_UPLOAD_MB", 16) * 1024 * 1024
    MAX_ATTACHMENT_BYTES = _env_int("MAX_ATTACHMENT_MB", 8) * 1024 * 1024

    BABEL_DEFAULT_LOCALE = "zh_Hans_CN"
    BABEL_DEFAULT_TIMEZONE = "UTC"  # stored times are UTC; templates convert with APP_TIMEZONE
    LANGUAGES = {"zh_Hans_CN": "简体中文", "en": "English"}
    #: Language of CLI output (``zh_Hans_CN`` or ``en``).
    CLI_LOCALE = os.environ.get("CLI_LOCALE") or "zh_Hans_CN"

    WTF_CSRF_TIME_LIMIT = None  # clerks keep a form open all morning; the token lives with the session
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    #: "keep me signed in" lasts this long from the sign-in (absolute; the cookie rotates on each use)
    REMEMBER_COOKIE_DURATION = timedelta(days=_env_int("REMEMBER_DAYS", 14))
    #: a sign-in without "keep me signed in" ends server-side after this many hours at the latest
    SESSION_MAX_HOURS = _env_int("SESSION_MAX_HOURS", 12)

    BOOTSTRAP_SERVE_LOCAL = True  # never a CDN: the product works offline

    #: Failed logins before an account is locked, and for how long.
    LOGIN_MAX_FAILURES = _env_int("LOGIN_MAX_FAILURES", 5)
    LOGIN_LOCK_MINUTES = _env_int("LOGIN_LOCK_MINUTES", 15)

    # Outbound notifications: "log" always; "smtp" when SMTP_HOST is set.
    NOTIFY_CHANNELS = os.environ.get("NOTIFY_CHANNELS") or "log"
    SMTP_HOST = os.environ.get("SMTP_HOST")
    SMTP_PORT = _env_int("SMTP_PORT", 25)
    SMTP_USERNAME = os.environ.get("SMTP_USERNAME")
    SMTP_PASSWORD = os.environ.get("SMTP_PASSWORD")
    SMTP_STARTTLS = _env_bool("SMTP_STARTTLS", False)
    SMTP_SENDER = os.environ.get("SMTP_SENDER") or "noreply@ksm.local"

    PASSWORD_HASH_METHOD = "scrypt"
    HSTS_SECONDS = 0  # production: a year (ProductionConfig)
    #: reverse proxies in front of the app whose X-Forwarded-For/-Proto to trust (0: none)
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

    #: composite rate = response·w1 + resolution·w2 + satisfaction·w3 (``RATE_WEIGHTS=0.1,0.5,0.4``)
    RATE_WEIGHTS = _env_weights("RATE_WEIGHTS")
    #: reporting months end on this day (e.g. 25: 26 Oct – 25 Nov); empty for calendar months
    RATES_CUTOFF_DAY = _env_int("RATES_CUTOFF_DAY", 0) or None

    TESTING = False
    DEBUG = False


class DevelopmentConfig(Config):
    """``make run``: SQLite in ``instance/``, embedded scheduler unless ``SCHEDULER=off``."""

    DEBUG = False  # the reloader would start the embedded scheduler twice; see README
    SCHEDULER = os.environ.get("SCHEDULER") or "embedded"


class TestingConfig(Config):
    """The test suite. The database comes from the test fixtures."""

    TESTING = True
    SECRET_KEY = "testing-secret-key"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL") or "sqlite://"
    SCHEDULER = "off"
    WTF_CSRF_ENABLED = True
    PASSWORD_HASH_METHOD = "pbkdf2:sha256:1000"  # fast hashing for tests only
    SERVER_NAME = None


class ProductionConfig(Config):
    """Behind gunicorn. Refuses the development secret key (see :func:`check_production`)."""

    #: Strict-Transport-Security max-age (0 turns it off, e.g. while TLS is not yet set up)
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31536000)

    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    REMEMBER_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20}


CONFIGS = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}


def config_from_env() -> type[Config]:
    """Pick the configuration class named by ``APP_ENV`` (default ``development``).

    Raises ``KeyError`` for an unknown name.
    """
    name = os.environ.get("APP_ENV", "development").strip().lower()
    try:
        return CONFIGS[name]
    except KeyError:
        raise KeyError(f"APP_ENV={name!r} is not one of {sorted(CONFIGS)}") from None
