"""Observability (issue 12): Prometheus /metrics kept from the public, one JSON log line per request
with a request id and no residents' phone numbers, /healthz with the scheduler's last sweep."""

from __future__ import annotations

import io
import json
import logging

from app.core import heartbeat, requestlog
from app.extensions import db
from tests.test_api import INTAKE, token_for

PHONE = "13912345678"


def _create(client, secret, **extra):
    body = {**INTAKE, "resident_name": "王女士", "resident_phone": PHONE, "channel": "phone", **extra}
    return client.post("/api/v1/cases", json=body, headers={"Authorization": f"Bearer {secret}"})


def test_metrics_count_requests_and_intakes_and_read_the_case_figures(app, client):
    secret = token_for(app, "clerk1")
    assert _create(client, secret).status_code == 201
    response = client.get("/metrics")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert 'ksm_http_request_duration_seconds_bucket{endpoint="api.create_case"' in text
    assert 'ksm_intakes_total{channel="phone"}' in text
    assert 'ksm_transitions_total{trigger="route"}' in text
    for name in ("ksm_open_cases", "ksm_overdue_cases", "ksm_outbox_pending", "ksm_outbox_failed"):
        assert f"\n{name} " in text, name
    assert "/api/v1/cases/KSM-" not in text  # grouped by endpoint, not by path


def test_metrics_are_not_public(app, client, monkeypatch):
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 404
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 404
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "s3cret-scrape-token")
    remote = {"REMOTE_ADDR": "10.0.0.5"}
    assert client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer wrong"}).status_code == 404
    allowed = client.get("/metrics", environ_base=remote, headers={"Authorization": "Bearer s3cret-scrape-token"})
    assert allowed.status_code == 200 and "ksm_open_cases" in allowed.get_data(as_text=True)


def test_one_json_line_per_request_with_its_id_and_no_phone_numbers(app, client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(requestlog.RedactingFilter())
    handler.setFormatter(requestlog.JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        secret = token_for(app, "clerk1")
        created = _create(client, secret, description=f"楼道漏水，请回电 {PHONE} 或 138-1234-5678")
        assert created.status_code == 201
        searched = client.get(
            f"/api/v1/cases?q={PHONE}", headers={"Authorization": f"Bearer {secret}", "X-Request-ID": "nginx-req-0001"}
        )
        assert searched.status_code == 200 and searched.headers["X-Request-ID"] == "nginx-req-0001"
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    output = stream.getvalue()
    lines = [json.loads(line) for line in output.splitlines()]  # every line is one JSON object
    requests = [line for line in lines if line["logger"] == "ksm.request"]
    assert [r["endpoint"] for r in requests] == ["api.create_case", "api.list_cases"]
    assert requests[0]["status"] == 201 and requests[0]["request_id"] == created.headers["X-Request-ID"]
    assert requests[1]["request_id"] == "nginx-req-0001" and requests[1]["query_keys"] == ["q"]
    assert all(isinstance(r["duration_ms"], float) for r in requests)
    # the notification of the new case quotes the description: logged, with the number masked
    assert any("139****5678" in line["msg"] for line in lines if line["logger"] == "ksm.notify")
    assert PHONE not in output and "12345678" not in output


def test_mask_phones_leaves_other_numbers_alone():
    assert requestlog.mask_phones("电话13812345678，单号KSM-20261201-0001") == "电话138****5678，单号KSM-20261201-0001"
    assert requestlog.mask_phones("23812345678 / 123456789012") == "23812345678 / 123456789012"


def test_healthz_keeps_its_keys_and_adds_the_last_sweep(app, client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["replica"] == {"configured": False, "lag_seconds": None}
    with app.app_context():
        heartbeat.record(heartbeat.Beat("sweep", count=3, duration_ms=42))
        db.session.commit()
    body = client.get("/healthz").get_json()
    assert body["scheduler"]["last_escalated"] == 3 and body["scheduler"]["last_duration_ms"] == 42
    assert 0 <= body["scheduler"]["age_seconds"] < 60
