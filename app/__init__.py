"""Application factory."""

from __future__ import annotations

import logging
import os

from flask import Flask, request, session
from flask_login import current_user

from config import DEV_SECRET_KEY, Config, config_from_env, pg_options


class ConfigurationError(RuntimeError):
    """The configuration is unsafe or incomplete for this environment."""


def check_production(app: Flask) -> None:
    """Refuse to start production with the development secret key or no key at all.

    Raises :class:`ConfigurationError`.
    """
    if app.config.get("ENV_NAME") != "production":
        return
    key = app.config.get("SECRET_KEY")
    if not key or key == DEV_SECRET_KEY or len(str(key)) < 16:
        raise ConfigurationError(
            "SECRET_KEY is unset, too short or the development key: set a random SECRET_KEY "
            "(e.g. python -c 'import secrets; print(secrets.token_hex(32))') before starting production."
        )


def create_app(config_class: type[Config] | None = None, **overrides) -> Flask:
    """Build the application: configuration, extensions, blueprints, CLI and error pages.

    Raises :class:`ConfigurationError` when production is misconfigured. Nothing here migrates the
    database or starts the scheduler; see ``flask db upgrade`` and ``app.sla.scheduler``.
    """
    config_class = config_class or config_from_env()
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_object(config_class)
    app.config["ENV_NAME"] = next((name for name, cls in _config_names().items() if cls is config_class), "custom")
    app.config.update(overrides)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        # SQLite has no connection pool to size
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options.pop("pool_size", None)
        options.pop("max_overflow", None)
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    elif startup := pg_options(app.config):
        options = dict(app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
        options["connect_args"] = {**options.get("connect_args", {}), "options": startup}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    check_production(app)
    _configure_logging(app)
    if app.config.get("TRUSTED_PROXIES"):
        # behind nginx & co.: the client's address (throttling) and scheme come from the proxy's headers
        from werkzeug.middleware.proxy_fix import ProxyFix

        hops = int(app.config["TRUSTED_PROXIES"])
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    from app.extensions import babel, bootstrap, csrf, db, login_manager, migrate

    db.init_app(app)
    _configure_sqlite(app)
    from app.core import pool

    pool.init_app(app)  # the liveness check of pooled connections
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(os.path.dirname(__file__)), "migrations"))
    csrf.init_app(app)
    babel.init_app(app, locale_selector=select_locale)
    from app.core.i18n import install_template_gettext

    install_template_gettext(app)
    bootstrap.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "warning"
    from flask_babel import lazy_gettext as _l

    login_manager.login_message = _l("Please sign in to open this page.")

    _import_models()

    # "basic": a session whose client fingerprint changes is marked non-fresh, not dropped — grid
    # workers' phones change networks all day. Stolen or outdated sessions are ended server-side instead
    # (app/auth/sessions.py: per-user stamp + per-session row checked on every request).
    login_manager.session_protection = "basic"

    @login_manager.user_loader
    def load_user(login_id: str):
        from app.auth.sessions import load_user as load_session_user

        return load_session_user(login_id)

    from flask_login import user_loaded_from_cookie

    @user_loaded_from_cookie.connect_via(app)
    def _rotate_remember_cookie(_sender, user, **_extra):
        from app.auth.sessions import rotate_remembered

        rotate_remembered(user)

    _register_blueprints(app)
    _register_template_helpers(app)
    _register_observability(app)

    from app.core import headers, hygiene

    hygiene.init_app(app)
    headers.init_app(app)

    from app.main.views import register_error_handlers

    register_error_handlers(app)
    if app.config.get("GC_FREEZE"):
        _freeze_startup_objects()
    return app


def _freeze_startup_objects() -> None:
    """Move what the process holds once started (modules, the pinyin dictionary of the category picker —
    about 200,000 lists —, SQLAlchemy's and Jinja's structures) out of the garbage collector's reach.

    They live as long as the process; without this every full collection walked them: about 200 ms, in
    one request of twenty on a list page (measured: an administrator's queue, p50 37 ms, p95 241 ms).
    """
    import gc

    gc.collect()
    gc.freeze()


def _config_names():
    from config import CONFIGS

    return CONFIGS


def select_locale() -> str:
    """The signed-in user's language, else the session's, else Simplified Chinese."""
    from flask import current_app, has_request_context

    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # CLI and scheduler jobs
        chosen = current_app.config.get("CLI_LOCALE")
        return chosen if chosen in languages else current_app.config["BABEL_DEFAULT_LOCALE"]
    if current_user and current_user.is_authenticated and current_user.locale in languages:
        return current_user.locale
    chosen = session.get("locale")
    if chosen in languages:
        return chosen
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def _configure_logging(app: Flask) -> None:
    from app.core.redact import install

    install()  # residents' phone numbers are masked in every log record
    if not app.debug and not app.testing:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        logging.getLogger("transitions").setLevel(logging.WARNING)


def _register_observability(app: Flask) -> None:
    """JSON request logs with a request id, Prometheus ``/metrics`` (issue 12; app/core)."""
    from app.core import metrics, replica, requestlog

    requestlog.init_app(app)
    metrics.init_app(app)
    replica.init_app(app)


def _configure_sqlite(app: Flask) -> None:
    """SQLite: foreign keys on, wait for locks, and transactions that really begin.

    pysqlite defers BEGIN until the first write, which breaks SAVEPOINT (nested transactions) and lets
    a read-then-write transaction fail when another process writes. The driver's own transaction
    handling is switched off and every transaction starts with ``BEGIN IMMEDIATE`` (one writer at a
    time; SQLite is the zero-setup development database, PostgreSQL serves production).
    """
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        return
    if getattr(_configure_sqlite, "done", False):
        return
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    @event.listens_for(Engine, "connect")
    def _sqlite_connect(dbapi_connection, _record):
        if type(dbapi_connection).__module__.startswith("sqlite3"):
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.close()

    @event.listens_for(Engine, "begin")
    def _sqlite_begin(connection):
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    _configure_sqlite.done = True


def _import_models() -> None:
    """Import every model module so metadata and Alembic see all tables."""
    import app.api.models  # noqa: F401
    import app.audit.models  # noqa: F401
    import app.auth.models  # noqa: F401
    import app.cases.attachments  # noqa: F401  (file clean-up on rollback)
    import app.cases.models  # noqa: F401
    import app.core.heartbeat  # noqa: F401 - job_run (issue 12)
    import app.core.settings_cache  # noqa: F401 - settings_version (issue 12)
    import app.core.throttle  # noqa: F401
    import app.hotline.models  # noqa: F401
    import app.notify.models  # noqa: F401
    import app.open311.models  # noqa: F401
    import app.org.models  # noqa: F401
    import app.reports.models  # noqa: F401
    import app.sla.models  # noqa: F401


def _register_blueprints(app: Flask) -> None:
    from app.api.views import bp as api_bp
    from app.auth.cli import bp as auth_cli
    from app.auth.views import bp as auth_bp
    from app.cases.views import bp as cases_bp
    from app.demo.cli import bp as demo_cli
    from app.main.cli import bp as main_cli
    from app.main.views import bp as main_bp
    from app.notify.views import bp as notify_bp
    from app.open311.views import bp as open311_bp
    from app.org.cli import bp as org_cli
    from app.privacy.views import bp as privacy_bp
    from app.reports.cli import bp as reports_cli
    from app.reports.views import bp as reports_bp
    from app.sla.cli import bp as sla_cli
    from app.sla.views import bp as sla_bp

    for blueprint in (
        main_bp,
        main_cli,
        auth_bp,
        auth_cli,
        cases_bp,
        sla_bp,
        notify_bp,
        privacy_bp,
        api_bp,
        open311_bp,
        org_cli,
        demo_cli,
        sla_cli,
        reports_bp,
        reports_cli,
    ):
        app.register_blueprint(blueprint)
    from app.hotline.cli import bp as hotline_cli
    from app.hotline.views import bp as hotline_bp
    from app.notify.cli import bp as notify_cli

    app.register_blueprint(hotline_bp)
    app.register_blueprint(hotline_cli)
    app.register_blueprint(notify_cli)
    # integrations authenticate with bearer tokens / api keys, not browser sessions
    from app.extensions import csrf

    csrf.exempt(api_bp)
    csrf.exempt(open311_bp)

    from app.admin import init_admin

    init_admin(app)


def _register_template_helpers(app: Flask) -> None:
    from flask_babel import format_datetime

    from app.auth import roles
    from app.core.timeutil import to_local

    @app.template_filter("localtime")
    def localtime(value, fmt: str = "%Y-%m-%d %H:%M"):
        local = to_local(value)
        return local.strftime(fmt) if local else ""

    @app.context_processor
    def inject_globals():
        from flask import current_app

        return {
            "roles": roles,
            "languages": current_app.config["LANGUAGES"],
            "current_locale": select_locale() if request else None,
            "format_datetime": format_datetime,
        }
