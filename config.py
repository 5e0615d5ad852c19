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


def _env_numbers(name: str, keys: tuple[str, ...]) -> dict[str, float] | None:
    """Comma-separated non-negative numbers for ``keys`` (e.g. ``RATING_BANDS=90,75,60``), or None."""
    value = os.environ.get(name)
    if not value:
        return None
    parts = [float(p) for p in value.split(",")]
    if len(parts) != len(keys) or any(p < 0 for p in parts):
        raise ValueError(f"{name} must be {len(keys)} non-negative numbers ({', '.join(keys)})")
    return dict(zip(keys, parts, strict=True))


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
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    #: a pooled connection is pinged (``SELECT 1``) at check-out when it has rested this long; one used within
    #: the window is trusted (app/core/pool.py; 0 pings at every check-out, as ``pool_pre_ping`` does)
    DB_PING_AFTER_IDLE_SECONDS = float(os.environ.get("DB_PING_AFTER_IDLE_SECONDS") or 1.0)
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
    #: where residents open their links (SMS are sent by the scheduler, outside any request)
    PUBLIC_BASE_URL = (os.environ.get("PUBLIC_BASE_URL") or "http://localhost:5000").rstrip("/")
    # SMS to residents (and staff who choose it): "aliyun", "tencent", or empty (console log only).
    # Credentials come only from the environment; see docs/operations.md.
    SMS_PROVIDER = os.environ.get("SMS_PROVIDER") or ""
    SMS_SIGN_NAME = os.environ.get("SMS_SIGN_NAME") or ""
    #: message kind → provider template id, e.g. "receipt=SMS_1,work_done=SMS_2,signoff_reminder=SMS_3"
    SMS_TEMPLATES = os.environ.get("SMS_TEMPLATES") or ""
    SMS_MAX_PER_RECIPIENT_PER_DAY = _env_int("SMS_MAX_PER_RECIPIENT_PER_DAY", 5)
    SMS_MAX_PER_DAY = _env_int("SMS_MAX_PER_DAY", 2000)
    #: shared secret in the provider's reply-callback URL (residents replying "TD" opt out)
    SMS_INBOUND_TOKEN = os.environ.get("SMS_INBOUND_TOKEN") or ""
    ALIYUN_ACCESS_KEY_ID = os.environ.get("ALIYUN_ACCESS_KEY_ID") or ""
    ALIYUN_ACCESS_KEY_SECRET = os.environ.get("ALIYUN_ACCESS_KEY_SECRET") or ""
    ALIYUN_SMS_ENDPOINT = os.environ.get("ALIYUN_SMS_ENDPOINT") or "dysmsapi.aliyuncs.com"
    ALIYUN_SMS_PROTOCOL = os.environ.get("ALIYUN_SMS_PROTOCOL") or "https"
    TENCENT_SECRET_ID = os.environ.get("TENCENT_SECRET_ID") or ""
    TENCENT_SECRET_KEY = os.environ.get("TENCENT_SECRET_KEY") or ""
    TENCENT_SMS_APP_ID = os.environ.get("TENCENT_SMS_APP_ID") or ""
    TENCENT_SMS_REGION = os.environ.get("TENCENT_SMS_REGION") or "ap-guangzhou"
    TENCENT_SMS_ENDPOINT = os.environ.get("TENCENT_SMS_ENDPOINT") or "sms.tencentcloudapi.com"
    TENCENT_SMS_PROTOCOL = os.environ.get("TENCENT_SMS_PROTOCOL") or "https"
    #: community code → group robot, e.g. "C01=wecom:KEY;C02=dingtalk:TOKEN:SECRET;C03=feishu:TOKEN"
    GROUP_ROBOTS = os.environ.get("GROUP_ROBOTS") or ""
    WECOM_WEBHOOK_BASE = os.environ.get("WECOM_WEBHOOK_BASE") or "https://qyapi.weixin.qq.com"
    DINGTALK_WEBHOOK_BASE = os.environ.get("DINGTALK_WEBHOOK_BASE") or "https://oapi.dingtalk.com"
    FEISHU_WEBHOOK_BASE = os.environ.get("FEISHU_WEBHOOK_BASE") or "https://open.feishu.cn"
    #: hours before an unanswered sign-off closes itself when the resident is reminded
    SIGNOFF_REMINDER_HOURS = _env_int("SIGNOFF_REMINDER_HOURS", 24)

    PASSWORD_HASH_METHOD = "scrypt"
    HSTS_SECONDS = 0  # production: a year (ProductionConfig)
    #: reverse proxies in front of the app whose X-Forwarded-For/-Proto to trust (0: none)
    TRUSTED_PROXIES = _env_int("TRUSTED_PROXIES", 0)

    #: composite rate = response·w1 + resolution·w2 + satisfaction·w3 (``RATE_WEIGHTS=0.1,0.5,0.4``)
    RATE_WEIGHTS = _env_weights("RATE_WEIGHTS")
    #: reporting months end on this day (e.g. 25: 26 Oct – 25 Nov); empty for calendar months
    RATES_CUTOFF_DAY = _env_int("RATES_CUTOFF_DAY", 0) or None
    #: firm rating: points per component (on-time acceptance, on-time completion, satisfaction, no reopen)
    RATING_WEIGHTS = _env_numbers("RATING_WEIGHTS", ("acceptance", "completion", "satisfaction", "reopen"))
    #: points off per yellow and per red card
    RATING_CARD_POINTS = _env_numbers("RATING_CARD_POINTS", ("yellow", "red"))
    #: lowest score of grades A, B and C (below C: D)
    RATING_BANDS = _env_numbers("RATING_BANDS", ("A", "B", "C"))
    #: the overdue board calls a case stuck after this many working days without any event
    STUCK_WORKING_DAYS = _env_int("STUCK_WORKING_DAYS", 3)
    #: the running month's rolled-up figures are used while younger than this (the scheduler refreshes
    #: them every 5 minutes); older, the figures are counted from the facts
    ROLLUP_MAX_AGE_MINUTES = _env_int("ROLLUP_MAX_AGE_MINUTES", 10)

    #: ``json``: every log record is one JSON line (production default); anything else: plain text
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "")
    #: a scraper sending ``Authorization: Bearer METRICS_TOKEN`` may read /metrics (else loopback only)
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    #: a streaming replica for dashboards, bulletins, ratings and exports (writes stay on the primary)
    REPLICA_DATABASE_URL = os.environ.get("REPLICA_DATABASE_URL") or None
    #: a replica further behind than this serves nothing (the primary does)
    REPLICA_MAX_LAG_SECONDS = float(os.environ.get("REPLICA_MAX_LAG_SECONDS") or 300)
    #: the firm rating waits at most this long for the replica to replay the primary's last writes
    REPLICA_CATCH_UP_SECONDS = float(os.environ.get("REPLICA_CATCH_UP_SECONDS") or 10)
    #: seconds between two escalation sweeps of ``flask scheduler`` (and the embedded one)
    SWEEP_INTERVAL_SECONDS = _env_int("SWEEP_INTERVAL_SECONDS", 60)
    #: other processes notice an administrator's change of cached settings within this many seconds
    SETTINGS_CHECK_SECONDS = float(os.environ.get("SETTINGS_CHECK_SECONDS") or 1.0)

    #: libpq startup options of every PostgreSQL connection (primary and replica). JIT compilation is off:
    #: the pages' statements are short, but some are estimated expensive (a bitmap over a month of facts)
    #: and JIT then spends 20–40 ms compiling them (measured: the bulletin at ten million cases, 176 →
    #: 122 ms). Empty: the server's settings. Behind PgBouncer (``PGBOUNCER=1``) startup options are not
    #: passed; set them on the role instead (docs/deployment.md).
    PG_OPTIONS = os.environ.get("PG_OPTIONS", "-c jit=off")
    #: once the app is built, freeze what it holds out of the garbage collector's reach (``gc.freeze``): a
    #: full collection otherwise walks ~370,000 long-lived objects, ~200 ms in one request of twenty
    GC_FREEZE = _env_bool("GC_FREEZE", True)
    #: behind PgBouncer in transaction mode (see ProductionConfig's engine options and docs/deployment.md)
    PGBOUNCER = _env_bool("PGBOUNCER", False)

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
    GC_FREEZE = False  # the suite makes many apps: their objects must stay collectable
    SERVER_NAME = None


class ProductionConfig(Config):
    """Behind gunicorn. Refuses the development secret key (see :func:`check_production`)."""

    #: Strict-Transport-Security max-age (0 turns it off, e.g. while TLS is not yet set up)
    HSTS_SECONDS = _env_int("HSTS_SECONDS", 31536000)

    SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "json")
    REMEMBER_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", True)
    #: a sync gunicorn worker serves one request at a time: a small pool per process is enough (the
    #: second connection is for the day's reference sequence and the replica check); behind PgBouncer in
    #: transaction mode set ``PGBOUNCER=1``: psycopg then never prepares statements (docs/deployment.md)
    SQLALCHEMY_ENGINE_OPTIONS = {
        "pool_size": _env_int("DB_POOL_SIZE", 2),
        "max_overflow": _env_int("DB_MAX_OVERFLOW", 3),
        "pool_recycle": 3600,
        **({"connect_args": {"prepare_threshold": None}} if _env_bool("PGBOUNCER", False) else {}),
    }


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


def pg_options(config) -> str | None:
    """The libpq ``options`` of the application's PostgreSQL connections (None: the server's settings)."""
    if config.get("PGBOUNCER"):
        return None  # PgBouncer refuses unknown startup parameters: set them on the role instead
    return (config.get("PG_OPTIONS") or "").strip() or None
