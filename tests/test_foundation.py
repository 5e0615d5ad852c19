"""The application factory, configuration, health check, error pages and language switch."""

from __future__ import annotations

import re

import pytest

from app import ConfigurationError, create_app
from config import DEV_SECRET_KEY, ProductionConfig, TestingConfig
from tests.conftest import csrf_token


def test_production_refuses_the_development_secret_key():
    with pytest.raises(ConfigurationError, match="SECRET_KEY"):
        create_app(ProductionConfig, SECRET_KEY=DEV_SECRET_KEY, SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_refuses_a_short_secret_key():
    with pytest.raises(ConfigurationError):
        create_app(ProductionConfig, SECRET_KEY="short", SQLALCHEMY_DATABASE_URI="sqlite://")


def test_production_starts_with_a_real_secret_key():
    app = create_app(ProductionConfig, SECRET_KEY="x" * 40, SQLALCHEMY_DATABASE_URI="sqlite://")
    assert app.config["ENV_NAME"] == "production"
    assert app.config["SESSION_COOKIE_SECURE"] is True
    assert app.config["SCHEDULER"] in ("off", "embedded")


def test_testing_config_is_used(app):
    assert app.testing
    assert app.config["ENV_NAME"] == "testing"
    assert app.config["SCHEDULER"] == "off"


def test_healthz_reports_database_ok(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.get_json()
    # the contract's keys stay; issue 12 adds the scheduler's last sweep and the replica
    assert body["status"] == "ok" and body["db"] == "ok"
    assert set(body) == {"status", "db", "scheduler", "replica"}


@pytest.mark.own_app
def test_healthz_reports_unreachable_database():
    broken = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite:////nonexistent-dir/x.db")
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.get_json()["db"] == "unreachable"


def test_unknown_page_is_a_styled_404(client, auth):
    auth.login("clerk1")
    response = client.get("/no-such-page")
    assert response.status_code == 404
    body = response.get_data(as_text=True)
    assert "404" in body and "<nav" in body


def test_unknown_api_path_answers_json_404(client):
    response = client.get("/api/v1/does-not-exist")
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "http_404"


@pytest.mark.own_app
def test_unexpected_error_is_a_styled_500_without_traceback():
    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", RENDER_500_IN_TESTS=True)

    @app.route("/_boom")
    def _boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/_boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret internals" not in body and "Traceback" not in body
    assert "500" in body and "<nav" in body


def test_chinese_is_the_default_language(client):
    body = client.get("/login").get_data(as_text=True)
    assert 'lang="zh-CN"' in body
    assert "登录" in body


def test_language_switch_is_remembered(client):
    token = csrf_token(client)
    response = client.post("/language", data={"locale": "en", "csrf_token": token, "next": "/login"})
    assert response.status_code == 302
    body = client.get("/login").get_data(as_text=True)
    assert 'lang="en"' in body and "Sign in" in body
    # an unknown language is ignored, the choice stays
    client.post("/language", data={"locale": "xx", "csrf_token": token})
    assert 'lang="en"' in client.get("/login").get_data(as_text=True)


def test_language_switch_needs_csrf(client):
    response = client.post("/language", data={"locale": "en"})
    assert response.status_code == 400


def test_static_assets_are_served_locally(client):
    body = client.get("/login").get_data(as_text=True)
    assert "cdn." not in body and "https://" not in body
    for asset in re.findall(r'(?:href|src)="(/[^"]+\.(?:css|js))', body):
        assert client.get(asset).status_code == 200, asset


@pytest.mark.own_app
def test_behind_a_trusted_proxy_the_client_address_comes_from_the_proxy():
    from flask import request

    app = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://", TRUSTED_PROXIES=1)

    @app.route("/_ip")
    def _ip():
        return request.remote_addr

    response = app.test_client().get("/_ip", headers={"X-Forwarded-For": "203.0.113.7"})
    assert response.get_data(as_text=True) == "203.0.113.7"
    plain = create_app(TestingConfig, SQLALCHEMY_DATABASE_URI="sqlite://")

    @plain.route("/_ip")
    def _ip2():
        return request.remote_addr

    assert (
        plain.test_client().get("/_ip", headers={"X-Forwarded-For": "203.0.113.7"}).get_data(as_text=True)
        != "203.0.113.7"
    )
