"""Prometheus metrics at ``/metrics`` (issue 12), with prometheus-flask-exporter.

What is exported:

- ``ksm_http_request_duration_seconds{method, endpoint, status}`` (histogram) and
  ``ksm_http_request_total`` — from the exporter, grouped by Flask endpoint (never by raw path: a
  path holds reference numbers);
- ``ksm_intakes_total{channel}`` and ``ksm_transitions_total{trigger}`` — cases registered and
  workflow transitions, counted when their transaction commits (in the process that committed them);
- read from the database at scrape time (so they are right whichever process did the work, the
  schedulers included): ``ksm_open_cases``, ``ksm_overdue_cases`` (open, escalation level ≥ 2),
  ``ksm_outbox_pending``, ``ksm_outbox_failed``, ``ksm_sweep_last_success_timestamp_seconds``,
  ``ksm_sweep_last_duration_seconds``, ``ksm_sweep_last_escalated`` (cases escalated by the last sweep),
  ``ksm_replica_lag_seconds`` when a replica is configured.

Under gunicorn set ``PROMETHEUS_MULTIPROC_DIR`` (``gunicorn.conf.py`` empties it at start and marks
exited workers dead): every worker writes its counters there and a scrape sums them, whichever worker
answers it.

Access: ``/metrics`` answers only a request from the loopback interface that did not come through a
proxy, or one with ``Authorization: Bearer $METRICS_TOKEN``; anyone else gets a 404.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from flask import Flask, Response, abort, current_app, request
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_flask_exporter import PrometheusMetrics
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

EXTENSION = "ksm_metrics"
_PENDING = "ksm_metric_events"


class AppMetrics:
    """The metrics of one application (a registry of its own, so tests may build several apps)."""

    def __init__(self, app: Flask):
        self.registry = CollectorRegistry(auto_describe=True)
        self.exporter = PrometheusMetrics(
            app,
            path=None,
            registry=self.registry,
            group_by="endpoint",
            defaults_prefix="ksm",
            excluded_paths=["^/static/", "^/metrics$"],
        )
        self.intakes = Counter("ksm_intakes", "Cases registered", ["channel"], registry=self.registry)
        self.transitions = Counter("ksm_transitions", "Workflow transitions fired", ["trigger"], registry=self.registry)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = AppMetrics(app)
    app.add_url_rule("/metrics", "metrics", metrics_view)


def _allowed() -> bool:
    token = current_app.config.get("METRICS_TOKEN")
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    if request.headers.get("X-Forwarded-For") or request.headers.get("X-Real-IP"):
        return False  # came through a proxy: not a local scraper, whatever the socket says
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def metrics_view():
    """The Prometheus text format (404 for the public: see the module docstring)."""
    if not _allowed():
        abort(404)
    mine: AppMetrics = current_app.extensions[EXTENSION]
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = mine.registry
    database = CollectorRegistry(auto_describe=False)
    database.register(DatabaseCollector())
    body = generate_latest(registry) + generate_latest(database)
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")


class DatabaseCollector:
    """Figures read from the database at scrape time (a few indexed counts)."""

    def collect(self):
        from app.cases.models import Case
        from app.core import heartbeat, replica
        from app.extensions import db
        from app.notify.models import OutboundMessage
        from workflows import OPEN_STATES

        session = db.session
        open_cases = session.scalar(select(func.count()).select_from(Case).where(Case.state.in_(OPEN_STATES)))
        overdue = session.scalar(
            select(func.count()).select_from(Case).where(Case.state.in_(OPEN_STATES), Case.escalation_level >= 2)
        )
        outbox = dict(
            session.execute(
                select(OutboundMessage.status, func.count())
                .where(OutboundMessage.status.in_(("pending", "failed")))
                .group_by(OutboundMessage.status)
            ).all()
        )
        yield GaugeMetricFamily("ksm_open_cases", "Cases not closed", value=open_cases or 0)
        yield GaugeMetricFamily("ksm_overdue_cases", "Open cases at escalation level 2 or more", value=overdue or 0)
        yield GaugeMetricFamily(
            "ksm_outbox_pending", "Outbound messages waiting to be sent", value=outbox.get("pending", 0)
        )
        yield GaugeMetricFamily("ksm_outbox_failed", "Outbound messages given up on", value=outbox.get("failed", 0))
        sweep = heartbeat.last_success("sweep")
        if sweep is not None:
            yield GaugeMetricFamily(
                "ksm_sweep_last_success_timestamp_seconds",
                "When a scheduler last swept successfully (Unix time)",
                value=sweep.last_success_at.timestamp(),
            )
            yield GaugeMetricFamily(
                "ksm_sweep_last_duration_seconds",
                "Duration of the last successful sweep",
                value=sweep.duration_ms / 1000,
            )
            yield GaugeMetricFamily("ksm_sweep_last_escalated", "Cases escalated by the last sweep", value=sweep.count)
        lag = replica.lag_seconds()
        if lag is not None:
            yield GaugeMetricFamily("ksm_replica_lag_seconds", "Replay lag of the read replica", value=lag)
        session.rollback()


# --------------------------------------------------------------------- counting what was committed


@event.listens_for(Session, "after_flush")
def _collect(session: Session, _context) -> None:
    from app.cases.models import CaseEvent

    for obj in session.new:
        if isinstance(obj, CaseEvent) and obj.kind in ("created", "transition"):
            label = (obj.payload or {}).get("channel", "unknown") if obj.kind == "created" else obj.trigger
            session.info.setdefault(_PENDING, []).append((obj.kind, str(label or "unknown")))


@event.listens_for(Session, "after_commit")
def _count(session: Session) -> None:
    happened = session.info.pop(_PENDING, None)
    if not happened:
        return
    try:
        mine: AppMetrics = current_app.extensions[EXTENSION]
    except (RuntimeError, KeyError):
        return
    for kind, label in happened:
        (mine.intakes if kind == "created" else mine.transitions).labels(label).inc()


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
