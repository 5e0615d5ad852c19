"""What the browser tests share: Chromium's launch flags, a live demo server, a browser.

Each browser test module builds its own server (its own SQLite database and demo data) with
:func:`live_server` and opens Chromium with :func:`chromium`, from module-scoped fixtures.
"""

from __future__ import annotations

import shutil
import threading
from contextlib import contextmanager
from pathlib import Path

from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@contextmanager
def live_server(base: Path, *, sweep: bool = False):
    """Serve a fresh demo installation (SQLite under ``base``) on a free loopback port; yields
    ``(app, url)``. ``sweep``: run one escalation sweep first, as the scheduler would have."""
    from flask_migrate import upgrade

    from app import create_app
    from app.demo.seed import seed_demo
    from app.extensions import db
    from config import TestingConfig

    app = create_app(
        TestingConfig, SQLALCHEMY_DATABASE_URI=f"sqlite:///{base / 'live.db'}", UPLOAD_DIR=str(base / "uploads")
    )
    with app.app_context():
        upgrade()
        seed_demo(with_cases=True)
        db.session.commit()
        if sweep:
            from app.sla.services import run_sweep

            run_sweep()
            db.session.commit()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app, f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@contextmanager
def chromium():
    """Debian's Chromium through Playwright, with the flags that keep it off the network."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield instance
        finally:
            instance.close()
