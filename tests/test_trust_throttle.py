"""Defect 6: public pages throttled per client and per (client, reference) with backoff, no global lock."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.cases.models import Case
from app.core import throttle
from app.core.timeutil import utcnow
from app.extensions import db
from tests.conftest import csrf_token
from tests.factories import make_case


def _track(client, ref, last4, ip):
    token = csrf_token(client, "/track")
    return client.post(
        "/track", data={"csrf_token": token, "ref": ref, "last4": last4}, environ_base={"REMOTE_ADDR": ip}
    )


def test_strangers_guessing_never_lock_the_resident_out(app):
    """Many clients each guessing wrong on one reference: the resident still gets in (was 15 minutes' lock)."""
    ref = make_case(resident_phone="13955554321")
    for n in range(8):
        attacker = app.test_client()
        for guess in range(3):
            assert _track(attacker, ref, f"{n}{guess}00", f"203.0.113.{n + 1}").status_code == 404
    resident = app.test_client()
    response = _track(resident, ref, "4321", "198.51.100.7")
    assert response.status_code == 200 and ref in response.get_data(as_text=True)


def test_one_client_backs_off_longer_after_each_wrong_try(ctx):
    now = utcnow()
    guard = throttle.TRACK
    waits = []
    for _ in range(6):
        throttle.failed(guard, "192.0.2.5", "KSM-1", now=now)
        waits.append(throttle.check(guard, "192.0.2.5", "KSM-1", now=now))
    assert waits[:2] == [None, None]
    assert waits[2] == 31 and waits[3] == 61 and waits[4] == 121 and waits[5] == 241
    # after waiting, the client may try again; another reference is not affected
    assert throttle.check(guard, "192.0.2.5", "KSM-1", now=now + timedelta(minutes=5)) is None
    assert throttle.check(guard, "192.0.2.5", "KSM-2", now=now) is None
    assert throttle.check(guard, "192.0.2.6", "KSM-1", now=now) is None


def test_a_client_trying_many_references_is_blocked_for_the_window(ctx):
    now = utcnow()
    guard = throttle.TRACK
    for n in range(guard.per_client):
        throttle.failed(guard, "192.0.2.9", f"KSM-{n}", now=now)
    wait = throttle.check(guard, "192.0.2.9", "KSM-NEW", now=now)
    assert wait is not None and wait > 14 * 60
    assert throttle.check(guard, "192.0.2.10", "KSM-NEW", now=now) is None


def test_ipv6_clients_are_counted_per_64_network(ctx):
    assert throttle.client_key("2001:db8:1:2:aaaa::1") == throttle.client_key("2001:db8:1:2:bbbb::9")
    assert throttle.client_key("2001:db8:1:3::1") != throttle.client_key("2001:db8:1:2::1")
    assert throttle.client_key("::ffff:192.0.2.1") == "192.0.2.1"
    assert throttle.client_key("not an address") == "unknown"


def test_signoff_page_is_throttled_like_track(app):
    ref = make_case("awaiting_signoff")
    with app.app_context():
        code = db.session.scalar(select(Case.signoff_token).where(Case.ref == ref))
    guesser = app.test_client()
    statuses = [
        guesser.get(f"/s/guess{n:04d}", environ_base={"REMOTE_ADDR": "203.0.113.50"}).status_code
        for n in range(throttle.SIGNOFF.per_client + 1)
    ]
    assert statuses == [404] * throttle.SIGNOFF.per_client + [429]
    blocked = guesser.get(f"/s/{code}", environ_base={"REMOTE_ADDR": "203.0.113.50"})
    assert blocked.status_code == 429 and "Retry-After" in blocked.headers
    resident = app.test_client().get(f"/s/{code}", environ_base={"REMOTE_ADDR": "198.51.100.8"})
    assert resident.status_code == 200


def test_codes_and_digits_are_compared_in_constant_time(ctx, monkeypatch):
    calls = []
    real = throttle.hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(throttle.hmac, "compare_digest", spy)
    from app.cases import services

    ref = make_case(resident_phone="13955550000")
    assert services.case_for_resident(ref, "0000").ref == ref
    assert calls[-1] == (b"0000", b"0000")
    case = db.session.scalar(select(Case).where(Case.ref == ref))
    assert services.case_for_signoff_token(case.signoff_token).id == case.id
    assert calls[-1] == (case.signoff_token.encode(), case.signoff_token.encode())
    assert not throttle.same_secret("1234", "1235") and not throttle.same_secret(None, "1234")


def test_old_counters_are_pruned_and_sign_in_spraying_is_throttled(ctx, app):
    from datetime import timedelta

    from app.core.throttle import Throttle

    now = utcnow()
    throttle.failed(throttle.TRACK, "192.0.2.77", "KSM-OLD", now=now - timedelta(days=2))
    assert db.session.get(Throttle, "track:c:192.0.2.77") is not None
    assert throttle.prune(now) >= 2
    assert db.session.get(Throttle, "track:c:192.0.2.77", populate_existing=True) is None
    for _n in range(throttle.LOGIN.per_client):
        throttle.failed(throttle.LOGIN, "192.0.2.78", now=now)
    assert throttle.check(throttle.LOGIN, "192.0.2.78", now=now)


def test_login_from_a_spraying_address_is_refused_with_429(app):
    from tests.conftest import csrf_token as token_of

    with app.app_context():
        for _ in range(throttle.LOGIN.per_client):
            throttle.failed(throttle.LOGIN, "203.0.113.99")
        db.session.commit()
    client = app.test_client()
    response = client.post(
        "/login",
        data={"username": "clerk1", "password": "Demo@2026", "csrf_token": token_of(client)},
        environ_base={"REMOTE_ADDR": "203.0.113.99"},
    )
    assert response.status_code == 429
    other = client.post(
        "/login",
        data={"username": "clerk1", "password": "Demo@2026", "csrf_token": token_of(client)},
        environ_base={"REMOTE_ADDR": "203.0.113.100"},
    )
    assert other.status_code == 302
