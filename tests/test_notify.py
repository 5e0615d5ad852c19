"""Notifications: the inbox, unread counts, and outbound delivery that retries and never loses anything."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.cases import services
from app.extensions import db
from app.notify import services as notify
from app.notify.channels import CHANNELS, DeliveryError, SmtpChannel
from app.notify.models import Notification, OutboundMessage
from tests.conftest import csrf_token
from tests.factories import load, make_case, user

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=TZ)


def test_dispatch_notifies_the_firm_in_its_language(ctx):
    manager = user("firm1")
    manager.locale = "en"
    case = load(make_case("firm_dispatched"))
    rows = db.session.scalars(
        select(Notification).where(Notification.user_id == manager.id, Notification.case_id == case.id)
    ).all()
    assert [n.kind for n in rows] == ["new_work"]
    assert rows[0].title.startswith("New case " + case.ref)
    grid_rows = db.session.scalars(
        select(Notification).where(Notification.user_id == user("grid1").id, Notification.case_id == case.id)
    ).all()
    assert grid_rows[0].title.startswith("新诉求")  # default language for the grid worker


def test_an_intake_queues_its_notifications_with_it_and_urgent_ones_go_at_once(ctx, app):
    """The grid worker hears of a new case when it is registered; at night a mail waits for the working morning,
    unless the case is urgent (the intake writes its notifications together with the case: its urgency is
    known before the case is in the database)."""
    night = datetime(2026, 11, 25, 22, 0, tzinfo=TZ)  # a Wednesday, after working hours
    app.config.update(NOTIFY_CHANNELS="log,smtp", SMTP_HOST="smtp.invalid")
    try:
        user("grid1").email = "grid1@example.org"
        db.session.commit()
        urgent, normal = (load(make_case(urgency=urgency, now=night)) for urgency in ("urgent", "normal"))
        db.session.commit()
    finally:
        app.config.update(NOTIFY_CHANNELS="log", SMTP_HOST=None)

    def mail(case):
        rows = db.session.execute(
            select(Notification, OutboundMessage)
            .join(OutboundMessage, OutboundMessage.notification_id == Notification.id)
            .where(Notification.case_id == case.id, Notification.kind == "new_work")
        ).all()
        assert len(rows) == 1
        return rows[0]

    note, message = mail(urgent)
    assert note.user_id == user("grid1").id and note.title.startswith(f"新诉求 {urgent.ref}") and "漏水" in note.title
    assert (message.channel, message.recipient, message.status) == ("smtp", "grid1@example.org", "pending")
    assert message.next_attempt_at == night  # urgent: at once
    assert mail(normal)[1].next_attempt_at == datetime(2026, 11, 26, 8, 30, tzinfo=TZ)  # the working morning


def test_firm_return_notifies_the_grid_worker(ctx):
    case = load(make_case("firm_dispatched"))
    services.fire(case, "firm_return", user("firm1"), inputs={"reason": "public_utility", "note": "属供水公司"})
    kinds = db.session.scalars(
        select(Notification.kind).where(Notification.user_id == user("grid1").id, Notification.case_id == case.id)
    ).all()
    assert "returned" in kinds


def test_the_log_channel_sends_at_once_and_other_channels_are_queued(ctx, app, caplog):
    import logging

    caplog.set_level(logging.INFO, logger="ksm.notify")
    case = load(make_case())
    assert any(case.ref in message for message in caplog.messages)  # logged as it was created
    assert (
        db.session.scalars(select(OutboundMessage).join(Notification).where(Notification.case_id == case.id)).all()
        == []
    )  # nothing to retry for the log
    app.config.update(NOTIFY_CHANNELS="log,smtp", SMTP_HOST="smtp.invalid")
    try:
        user("firm1").email = "firm1@example.org"
        services.fire(case, "grid_accept", user("grid1"))
        services.fire(case, "dispatch_to_firm", user("grid1"))
    finally:
        app.config.update(NOTIFY_CHANNELS="log", SMTP_HOST=None)
    queued = db.session.scalars(select(OutboundMessage).join(Notification).where(Notification.case_id == case.id)).all()
    assert [(m.channel, m.recipient, m.status) for m in queued] == [("smtp", "firm1@example.org", "pending")]


def test_a_failing_channel_is_retried_then_given_up_without_losing_the_inbox(ctx, app, monkeypatch):
    class Broken(SmtpChannel):
        def send(self, recipient, subject, body):
            raise DeliveryError("mail server down")

    monkeypatch.setitem(CHANNELS, "smtp", Broken)
    app.config.update(NOTIFY_CHANNELS="log,smtp", SMTP_HOST="smtp.invalid")
    try:
        supervisor = user("supervisor1")
        supervisor.email = "huang@example.org"
        notify.notify([supervisor], "test", lambda: ("标题", "内容"), now=NOW)
    finally:
        app.config.update(NOTIFY_CHANNELS="log", SMTP_HOST=None)
    mail = db.session.scalar(select(OutboundMessage).where(OutboundMessage.channel == "smtp"))
    when = NOW
    for attempt in range(1, notify.MAX_ATTEMPTS + 1):
        notify.deliver_pending(when)
        assert mail.attempts == attempt and "mail server down" in mail.last_error
        when = mail.next_attempt_at
    assert mail.status == "failed"
    assert notify.deliver_pending(when + timedelta(days=1)).failed == 0  # given up: not tried again
    assert db.session.get(Notification, mail.notification_id).title == "标题"  # the inbox keeps it


def test_a_transition_succeeds_even_when_outbound_sending_would_fail(ctx, app, monkeypatch):
    def explode(*args, **kwargs):
        raise OSError("network unreachable")

    monkeypatch.setattr("smtplib.SMTP", explode)
    app.config.update(NOTIFY_CHANNELS="log,smtp", SMTP_HOST="smtp.invalid")
    try:
        user("firm1").email = "firm1@example.org"
        case = load(make_case("firm_dispatched"))
    finally:
        app.config.update(NOTIFY_CHANNELS="log", SMTP_HOST=None)
    assert case.state == "firm_dispatched"
    from app.core.timeutil import utcnow

    # (three days on: past any quiet hours, whenever the suite runs)
    result = notify.deliver_pending(utcnow() + timedelta(days=3))
    assert result.retried >= 1  # the mail will be tried again later
    mails = db.session.scalars(select(OutboundMessage).where(OutboundMessage.channel == "smtp")).all()
    assert mails and all(m.status == "pending" and "network unreachable" in m.last_error for m in mails)
    assert (
        db.session.scalar(
            select(Notification).where(Notification.user_id == user("firm1").id, Notification.case_id == case.id)
        )
        is not None
    )


def test_smtp_channel_sends_a_message(app, monkeypatch):
    sent = {}

    class FakeSMTP:
        def __init__(self, host, port, timeout):
            sent["host"] = host

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def send_message(self, message):
            sent["to"], sent["subject"] = message["To"], message["Subject"]

    monkeypatch.setattr("smtplib.SMTP", FakeSMTP)
    with app.app_context():
        app.config["SMTP_HOST"] = "mail.local"
        try:
            SmtpChannel().send("a@example.org", "黄牌督办", "内容")
        finally:
            app.config["SMTP_HOST"] = None
    assert sent == {"host": "mail.local", "to": "a@example.org", "subject": "黄牌督办"}


def test_inbox_shows_unread_count_and_marks_read(client, auth, app):
    ref = make_case("firm_dispatched")
    auth.login("firm1")
    page = client.get("/cases").get_data(as_text=True)
    assert 'id="unread-count">1<' in page
    inbox = client.get("/inbox").get_data(as_text=True)
    assert ref in inbox
    with app.app_context():
        notification_id = db.session.scalar(select(Notification.id).where(Notification.user_id == user("firm1").id))
    opened = client.post(f"/inbox/{notification_id}/open", data={"csrf_token": csrf_token(client, "/inbox")})
    assert opened.status_code == 302 and ref in opened.headers["Location"]
    assert 'id="unread-count"' not in client.get("/cases").get_data(as_text=True)
    # another user cannot open someone else's notification
    auth.logout()
    auth.login("firm2")
    other = client.post(f"/inbox/{notification_id}/open", data={"csrf_token": csrf_token(client, "/inbox")})
    assert other.headers["Location"].endswith("/inbox")


def test_mark_all_read(client, auth):
    make_case("firm_dispatched")
    make_case("firm_dispatched")
    auth.login("firm1")
    response = client.post("/inbox/read-all", data={"csrf_token": csrf_token(client, "/inbox")}, follow_redirects=True)
    assert "2" in response.get_data(as_text=True)
    assert 'id="unread-count"' not in response.get_data(as_text=True)


@pytest.mark.parametrize("channels", ["log,unknown", "log,smtp"])
def test_misconfigured_channels_are_ignored(app, channels):
    from app.notify.channels import enabled_channels

    with app.app_context():
        app.config["NOTIFY_CHANNELS"] = channels
        try:
            assert [c.name for c in enabled_channels()] == ["log"]
        finally:
            app.config["NOTIFY_CHANNELS"] = "log"


def test_a_savepoint_does_not_send_log_messages_of_a_later_rollback(ctx, caplog):
    """A dry run (12345 import) releases savepoints per row and then rolls back: nothing is announced."""
    import logging

    caplog.set_level(logging.INFO, logger="ksm.notify")
    with db.session.begin_nested():
        notify.notify([user("supervisor1")], "test", lambda: ("试运行消息", ""), now=NOW)
    assert not any("试运行消息" in m for m in caplog.messages)
    db.session.rollback()
    assert not any("试运行消息" in m for m in caplog.messages)
    notify.notify([user("supervisor1")], "test", lambda: ("真实消息", ""), now=NOW)
    try:
        with db.session.begin_nested():
            notify.notify([user("supervisor1")], "test", lambda: ("撤销的消息", ""), now=NOW)
            raise ValueError("this row fails")
    except ValueError:
        pass
    db.session.commit()
    assert any("真实消息" in m for m in caplog.messages)
    assert not any("撤销的消息" in m for m in caplog.messages)  # its savepoint was rolled back
