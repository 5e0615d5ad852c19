"""Signing in and out, lockout, passwords, roles and scopes, CLI accounts and tokens."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from app.auth import roles, services
from app.auth.models import ApiToken, User
from app.core.errors import ValidationError
from app.core.timeutil import utcnow
from app.extensions import db
from tests.conftest import csrf_token


def test_login_success_redirects_home_and_greets(client, auth):
    response = auth.login("clerk1")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 302 and home.headers["Location"] == "/cases"
    page = client.get("/cases").get_data(as_text=True)
    assert "李静" in page


def test_login_with_wrong_password_keeps_username_and_says_why(client):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "clerk1", "password": "wrong", "csrf_token": token})
    assert response.status_code == 401
    body = response.get_data(as_text=True)
    assert "用户名或密码错误" in body
    assert 'value="clerk1"' in body  # what the user typed is kept


def test_unknown_user_gets_the_same_message_as_a_wrong_password(client):
    token = csrf_token(client)
    response = client.post("/login", data={"username": "nobody", "password": "x", "csrf_token": token})
    assert response.status_code == 401
    assert "用户名或密码错误" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_refused(client):
    response = client.post("/login", data={"username": "clerk1", "password": "Demo@2026"})
    assert response.status_code == 400


def test_repeated_failures_lock_the_account_with_a_clear_message(client, app):
    token = csrf_token(client)
    for _ in range(app.config["LOGIN_MAX_FAILURES"] - 1):
        assert (
            client.post("/login", data={"username": "grid2", "password": "bad", "csrf_token": token}).status_code == 401
        )
    locked = client.post("/login", data={"username": "grid2", "password": "bad", "csrf_token": token})
    assert "已被锁定" in locked.get_data(as_text=True)
    # even the right password is refused while locked
    right = client.post("/login", data={"username": "grid2", "password": "Demo@2026", "csrf_token": token})
    assert right.status_code == 401
    assert "已被锁定" in right.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "grid2"))
        assert user.locked_until is not None and user.locked_until > utcnow()
        # when the lock has expired, the right password works again
        user.locked_until = utcnow() - timedelta(seconds=1)
        db.session.commit()
    again = client.post("/login", data={"username": "grid2", "password": "Demo@2026", "csrf_token": token})
    assert again.status_code == 302


def test_disabled_account_cannot_sign_in(client, app):
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "grid3"))
        user.active = False
        db.session.commit()
    token = csrf_token(client)
    response = client.post("/login", data={"username": "grid3", "password": "Demo@2026", "csrf_token": token})
    assert response.status_code == 401
    assert "已停用" in response.get_data(as_text=True)


def test_logout_requires_post_and_ends_the_session(client, auth):
    auth.login("clerk1")
    assert client.get("/logout").status_code == 405
    assert auth.logout().status_code == 302
    response = client.get("/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_next_parameter_cannot_redirect_off_site(client):
    token = csrf_token(client)
    response = client.post(
        "/login?next=https://evil.example/", data={"username": "clerk1", "password": "Demo@2026", "csrf_token": token}
    )
    assert response.headers["Location"] == "/"


def test_change_password(client, auth, app):
    auth.login("clerk2")
    token = csrf_token(client, "/profile")
    weak = client.post(
        "/profile",
        data={
            "current_password": "Demo@2026",
            "new_password": "abcdefgh",
            "confirm": "abcdefgh",
            "csrf_token": token,
            "submit": "1",
        },
    )
    assert "至少 8 位" in weak.get_data(as_text=True)
    wrong = client.post(
        "/profile",
        data={
            "current_password": "nope",
            "new_password": "NewPass2026",
            "confirm": "NewPass2026",
            "csrf_token": token,
            "submit": "1",
        },
    )
    assert "当前密码不正确" in wrong.get_data(as_text=True)
    ok = client.post(
        "/profile",
        data={
            "current_password": "Demo@2026",
            "new_password": "NewPass2026",
            "confirm": "NewPass2026",
            "csrf_token": token,
            "submit": "1",
        },
    )
    assert ok.status_code == 302
    auth.logout()
    assert auth.login("clerk2", "Demo@2026").status_code == 401
    assert auth.login("clerk2", "NewPass2026").status_code == 302


def test_create_user_validates_role_and_scope(ctx):
    grid = services.resolve_scope(roles.GRID, "G01")
    with pytest.raises(ValidationError, match="needs a scope"):
        services.create_user("newclerk", "Passw0rd1", roles.CLERK, grid)
    with pytest.raises(ValidationError, match="is taken"):
        services.create_user("clerk1", "Passw0rd1", roles.GRID_WORKER, grid)
    with pytest.raises(ValidationError, match="at least 8 characters"):
        services.create_user("newgrid", "short", roles.GRID_WORKER, grid)
    user = services.create_user("newgrid", "Passw0rd1", roles.GRID_WORKER, grid, phone="13800000000")
    assert user.scope_kind == roles.GRID and user.grid.code == "G01"


def test_cli_create_user_and_token(runner, app):
    result = runner.invoke(
        args=["create-user", "hotline", "--role", "supervisor", "--scope", "street:S01", "--password", "Hotline2026"]
    )
    assert result.exit_code == 0, result.output
    assert "hotline" in result.output
    bad = runner.invoke(
        args=["create-user", "x2", "--role", "supervisor", "--scope", "C01", "--password", "Hotline2026"]
    )
    assert bad.exit_code != 0 and "community:C01" in bad.output
    unknown = runner.invoke(
        args=["create-user", "x3", "--role", "grid_worker", "--scope", "G99", "--password", "Hotline2026"]
    )
    assert unknown.exit_code != 0 and "G99" in unknown.output
    token = runner.invoke(args=["create-token", "hotline", "--name", "12345"])
    assert token.exit_code == 0
    secret = token.output.strip()
    assert secret.startswith("ksm_") and len(secret) > 30
    with app.app_context():
        stored = db.session.scalar(select(ApiToken).where(ApiToken.name == "12345"))
        assert stored.token_hash == ApiToken.hash_secret(secret) and secret not in stored.token_hash
        assert services.user_for_token(secret).username == "hotline"
        assert services.user_for_token(secret + "x") is None
        stored.revoked_at = utcnow()
        db.session.flush()
        assert services.user_for_token(secret) is None
    missing = runner.invoke(args=["create-token", "nobody"])
    assert missing.exit_code != 0


def test_tokens_on_the_profile_page(client, auth):
    auth.login("firm1")
    response = auth.post("/profile/tokens", {"token-name": "erp"}, form_page="/profile")
    body = response.get_data(as_text=True)
    assert "ksm_" in body and "erp" in body
    assert "将不再显示" in body
    page = client.get("/profile").get_data(as_text=True)
    assert "erp" in page and "ksm_" in page  # the prefix is listed; the secret is not shown again
    assert body.count("ksm_") > page.count("ksm_")


def test_passwords_are_stored_hashed(ctx):
    user = db.session.scalar(select(User).where(User.username == "admin"))
    assert "Demo@2026" not in user.password_hash
    assert user.check_password("Demo@2026") and not user.check_password("demo@2026")
