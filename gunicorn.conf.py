"""gunicorn settings for the web processes (``gunicorn -c gunicorn.conf.py wsgi:app``).

Everything can be overridden from the environment (see docs/deployment.md):
``WEB_BIND`` (default ``127.0.0.1:8000``: behind nginx), ``WEB_CONCURRENCY`` (sync workers, default
2 × cores + 1), ``WEB_TIMEOUT`` (s), ``WEB_MAX_REQUESTS``. Web processes never run the escalation
scheduler: ``SCHEDULER=off`` is forced here; run ``flask scheduler`` as its own service.
"""

import multiprocessing
import os
import shutil

bind = os.environ.get("WEB_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "sync"  # requests are short and database-bound; nginx buffers slow clients
timeout = int(os.environ.get("WEB_TIMEOUT", "30"))
graceful_timeout = 30
keepalive = 2
# recycle workers now and then (memory growth of long-lived Python processes), not all at once
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "5000"))
max_requests_jitter = max_requests // 10
# the app is imported in each worker after the fork: no database connection crosses a fork
preload_app = False
# one JSON line per request comes from the app itself (app.core.requestlog); no second access log
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
proc_name = "ksm-web"

raw_env = ["SCHEDULER=off"]
os.environ["SCHEDULER"] = "off"


def on_starting(server):
    """Prometheus multiprocess mode: start from an empty metrics directory."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    """Drop the live gauges of a worker that has gone (its counters stay summed)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
