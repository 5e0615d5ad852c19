"""Outbound messages through every adapter, against a fake provider on 127.0.0.1.

The official SDKs (Alibaba Cloud, Tencent Cloud) and apprise's group-robot plugins are pointed at a local
HTTP server by configuration; the tests check what would have reached the provider: signature,
template, parameters, retries, quiet hours, opt-out, quotas, and no SMS without a phone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.cases import services
from app.extensions import db
from app.notify import resident
from app.notify import services as notify
from app.notify.channels import DeliveryError, Outgoing, RobotChannel
from app.notify.models import OutboundMessage, SmsOptOut
from app.sla import services as sla
from tests.conftest import csrf_token
from tests.factories import load, make_case, user

TZ = ZoneInfo("Asia/Shanghai")
WED_0900 = datetime(2026, 11, 25, 9, 0, tzinfo=TZ)
PHONE = "13812345678"
TEMPLATES = "receipt=SMS_100,work_done=SMS_200,signoff_reminder=SMS_300,staff_alert=SMS_400"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ)


class FakeProvider:
    """A local HTTP server standing in for the SMS APIs and the robot webhooks; records every request."""

    def __init__(self):
        self.requests: list[dict] = []
        self.failures: list[tuple[int, dict]] = []  # answers to give before succeeding again
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                owner.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, answer = owner.failures.pop(0) if owner.failures else (200, owner.success(self.headers))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @staticmethod
    def success(headers) -> dict:
        if headers.get("X-TC-Action"):
            status = {"SerialNo": "2433:1", "PhoneNumber": "+86", "Fee": 1, "Code": "Ok", "Message": "send success"}
            return {"Response": {"SendStatusSet": [status], "RequestId": "req-1"}}
        if headers.get("x-acs-action"):
            return {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "req-2"}
        return {"errcode": 0, "errmsg": "ok", "code": 0, "msg": "success"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    fake = FakeProvider()
    yield fake
    fake.close()


@pytest.fixture
def aliyun(app, provider, monkeypatch):
    for key, value in {
        "SMS_PROVIDER": "aliyun",
        "SMS_SIGN_NAME": "池州社区",
        "SMS_TEMPLATES": TEMPLATES,
        "ALIYUN_ACCESS_KEY_ID": "LTAI-test-id",
        "ALIYUN_ACCESS_KEY_SECRET": "test-secret",
        "ALIYUN_SMS_ENDPOINT": provider.address,
        "ALIYUN_SMS_PROTOCOL": "http",
        "PUBLIC_BASE_URL": "https://ksm.example.gov.cn",
    }.items():
        monkeypatch.setitem(app.config, key, value)
    return provider


@pytest.fixture
def tencent(app, provider, monkeypatch):
    for key, value in {
        "SMS_PROVIDER": "tencent",
        "SMS_SIGN_NAME": "池州社区",
        "SMS_TEMPLATES": "receipt=1001,work_done=1002,signoff_reminder=1003",
        "TENCENT_SECRET_ID": "AKID-test",
        "TENCENT_SECRET_KEY": "test-key",
        "TENCENT_SMS_APP_ID": "1400000001",
        "TENCENT_SMS_ENDPOINT": provider.address,
        "TENCENT_SMS_PROTOCOL": "http",
        "PUBLIC_BASE_URL": "https://ksm.example.gov.cn",
    }.items():
        monkeypatch.setitem(app.config, key, value)
    return provider


@pytest.fixture
def robots(app, provider, monkeypatch):
    base = f"http://{provider.address}"
    monkeypatch.setitem(
        app.config, "GROUP_ROBOTS", "C01=wecom:wecom-key-1;C02=dingtalk:dtoken1:SECdingsecret1;C03=feishu:ftoken1"
    )
    monkeypatch.setitem(app.config, "WECOM_WEBHOOK_BASE", base)
    monkeypatch.setitem(app.config, "DINGTALK_WEBHOOK_BASE", base)
    monkeypatch.setitem(app.config, "FEISHU_WEBHOOK_BASE", base)
    return provider


def aliyun_query(request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(request["path"]).query).items()}


def resident_rows(case) -> list[OutboundMessage]:
    return list(
        db.session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.case_id == case.id, OutboundMessage.audience == "resident")
            .order_by(OutboundMessage.id)
        )
    )


# ------------------------------------------------------------------------------------------- SMS


def test_aliyun_sends_the_receipt_and_the_please_confirm_message_by_template(ctx, aliyun):
    case = load(make_case("awaiting_signoff", now=WED_0900))
    assert [(m.kind, m.channel, m.recipient, m.status) for m in resident_rows(case)] == [
        ("receipt", "sms", PHONE, "pending"),
        ("work_done", "sms", PHONE, "pending"),
    ]
    result = notify.deliver_pending(WED_0900)
    assert result.sent >= 2
    sms = [r for r in aliyun.requests if r["headers"].get("x-acs-action") == "SendSms"]
    assert len(sms) == 2
    receipt, done = (aliyun_query(r) for r in sms)
    assert (receipt["PhoneNumbers"], receipt["SignName"], receipt["TemplateCode"]) == (PHONE, "池州社区", "SMS_100")
    assert json.loads(receipt["TemplateParam"]) == {"ref": case.ref, "link": "https://ksm.example.gov.cn/track"}
    assert done["TemplateCode"] == "SMS_200"
    assert json.loads(done["TemplateParam"]) == {
        "ref": case.ref,
        "link": f"https://ksm.example.gov.cn/s/{case.signoff_token}",
        "code": case.signoff_token,
    }
    auth = sms[1]["headers"]["Authorization"]
    assert auth.startswith("ACS3-HMAC-SHA256 Credential=LTAI-test-id,") and "Signature=" in auth
    assert "test-secret" not in json.dumps([r["headers"] for r in sms])  # the secret signs, it is never sent
    assert all(m.status == "sent" for m in resident_rows(case))


def test_tencent_sends_ordered_parameters_and_signs_with_tc3(ctx, tencent):
    case = load(make_case("awaiting_signoff", now=WED_0900))
    notify.deliver_pending(WED_0900)
    sms = [json.loads(r["body"]) for r in tencent.requests if r["headers"].get("X-TC-Action") == "SendSms"]
    assert [body["TemplateId"] for body in sms] == ["1001", "1002"]
    assert sms[1] == {
        "PhoneNumberSet": ["+86" + PHONE],
        "SmsSdkAppId": "1400000001",
        "TemplateId": "1002",
        "SignName": "池州社区",
        "TemplateParamSet": [case.ref, f"https://ksm.example.gov.cn/s/{case.signoff_token}", case.signoff_token],
    }
    assert tencent.requests[0]["headers"]["Authorization"].startswith("TC3-HMAC-SHA256 Credential=AKID-test/")


def test_a_refused_sms_is_retried_with_back_off_then_sent(ctx, aliyun):
    case = load(make_case(now=WED_0900))
    aliyun.failures = [(200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控"}), (503, {})]
    (receipt,) = resident_rows(case)
    assert notify.deliver_pending(WED_0900).retried == 1
    assert receipt.status == "pending" and "isv.BUSINESS_LIMIT_CONTROL" in receipt.last_error
    assert receipt.next_attempt_at == WED_0900 + timedelta(minutes=1)
    assert notify.deliver_pending(WED_0900 + timedelta(seconds=30)).retried == 0  # not before its time
    assert notify.deliver_pending(receipt.next_attempt_at).retried == 1  # HTTP 503
    assert notify.deliver_pending(receipt.next_attempt_at).sent == 1
    assert receipt.status == "sent" and receipt.attempts == 3
    assert len([r for r in aliyun.requests if r["headers"].get("x-acs-action")]) == 3


def test_tencent_errors_are_retried(ctx, tencent):
    case = load(make_case(now=WED_0900))
    bad = {"Response": {"SendStatusSet": [{"Code": "FailedOperation.PhoneNumberInBlacklist", "Message": "blacklist"}]}}
    tencent.failures = [(200, bad)]
    assert notify.deliver_pending(WED_0900).retried == 1
    assert "PhoneNumberInBlacklist" in resident_rows(case)[0].last_error


def test_no_phone_no_sms(ctx, aliyun):
    case = load(make_case(channel="online", resident_phone="", now=WED_0900))
    assert case.resident_phone is None and resident_rows(case) == []
    notify.deliver_pending(WED_0900)
    assert not [r for r in aliyun.requests if r["headers"].get("x-acs-action")]


def test_a_resident_who_replies_td_gets_nothing_more(ctx, app, client, aliyun, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_INBOUND_TOKEN", "callback-secret")
    first = load(make_case(now=WED_0900))
    ref = first.ref
    db.session.commit()
    refused = client.post("/sms/replies/tencent?token=wrong", json={"mobile": PHONE, "text": "TD"})
    assert refused.status_code == 403
    reply = client.post("/sms/replies/tencent?token=callback-secret", json={"mobile": PHONE, "text": " td "})
    assert reply.status_code == 200 and reply.get_json()["opted_out"] == 1
    assert db.session.get(SmsOptOut, PHONE) is not None
    assert resident_rows(load(ref))[0].status == "skipped"  # the waiting receipt is not sent either
    second = load(make_case("awaiting_signoff", now=WED_0900))
    assert {(m.status, m.last_error) for m in resident_rows(second)} == {("skipped", "opted out")}
    notify.deliver_pending(WED_0900)
    assert not [r for r in aliyun.requests if r["headers"].get("x-acs-action")]
    aliyun_push = client.post(
        "/sms/replies/aliyun?token=callback-secret", json=[{"phone_number": "13900001111", "content": "退订"}]
    )
    assert aliyun_push.status_code == 200 and db.session.get(SmsOptOut, "13900001111") is not None
    other = client.post("/sms/replies/tencent?token=callback-secret", json={"mobile": "13900002222", "text": "谢谢"})
    assert other.get_json()["opted_out"] == 0
    assert client.post("/sms/replies/tencent?token=callback-secret", data="x").status_code == 400


def test_quotas_per_number_and_per_day(ctx, app, aliyun, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_MAX_PER_RECIPIENT_PER_DAY", 2)
    refs = [make_case(now=WED_0900 + timedelta(minutes=i)) for i in range(3)]
    statuses = [resident_rows(load(ref))[0].status for ref in refs]
    assert statuses == ["pending", "pending", "skipped"]
    assert resident_rows(load(refs[2]))[0].last_error == "daily quota for this number reached"
    # the system's daily total is enforced by the sender: the first two receipts go, the third is kept unsent
    monkeypatch.setitem(app.config, "SMS_MAX_PER_RECIPIENT_PER_DAY", 10)
    monkeypatch.setitem(app.config, "SMS_MAX_PER_DAY", 2)
    other = load(make_case(resident_phone="13900003333", now=WED_0900 + timedelta(minutes=5)))
    assert resident_rows(other)[0].status == "pending"
    result = notify.deliver_pending(WED_0900 + timedelta(minutes=10))
    assert result.sent == 2
    assert [m.status for m in resident_rows(load(refs[0])) + resident_rows(load(refs[1]))] == ["sent", "sent"]
    held = resident_rows(other)[0]
    assert (held.status, held.last_error) == ("skipped", "daily SMS quota reached")
    # the next day the counts start again
    tomorrow = load(make_case(resident_phone="13900003333", now=WED_0900 + timedelta(days=1)))
    assert resident_rows(tomorrow)[0].status == "pending"
    assert notify.deliver_pending(WED_0900 + timedelta(days=1, minutes=1)).sent == 1
    assert resident_rows(tomorrow)[0].status == "sent"


def test_reminder_before_auto_close_once(ctx, aliyun):
    case = load(make_case("awaiting_signoff", now=WED_0900))
    assert case.due_at == at("2026-11-30T17:30")  # 3 working days: Thu, Fri, Mon
    assert resident.queue_signoff_reminders(at("2026-11-28T10:00")) == 0  # too early
    assert resident.queue_signoff_reminders(at("2026-11-29T18:00")) == 1
    assert resident.queue_signoff_reminders(at("2026-11-30T09:00")) == 0  # once
    reminder = resident_rows(case)[-1]
    assert reminder.kind == "signoff_reminder" and reminder.params["date"] == "2026-11-30 17:30"
    notify.deliver_pending(at("2026-11-30T09:00"))
    last = aliyun_query([r for r in aliyun.requests if r["headers"].get("x-acs-action")][-1])
    assert last["TemplateCode"] == "SMS_300"
    assert json.loads(last["TemplateParam"])["date"] == "2026-11-30 17:30"


def test_console_channel_without_a_provider(ctx, app, caplog):
    caplog.set_level(logging.INFO, logger="ksm.notify")
    case = load(make_case("awaiting_signoff", now=WED_0900))
    assert {m.channel for m in resident_rows(case)} == {"log"}
    notify.deliver_pending(WED_0900)
    text = "\n".join(caplog.messages)
    assert f"/s/{case.signoff_token}" in text and case.ref in text


def test_unconfigured_sms_fails_visibly_for_administrators(ctx, app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "SMS_PROVIDER", "aliyun")  # but no credentials, no templates
    case = load(make_case(now=WED_0900))
    (receipt,) = resident_rows(case)
    for _attempt in range(notify.MAX_ATTEMPTS):
        notify.deliver_pending(receipt.next_attempt_at)
    assert receipt.status == "failed" and "SMS_TEMPLATES" in receipt.last_error
    db.session.commit()
    auth.login("admin")
    page = client.get("/admin/outboundmessage/?flt0_0=failed").get_data(as_text=True)
    assert "SMS_TEMPLATES" in page
    cells = [c.strip() for c in re.findall(r"<td[^>]*>([^<]*)</td>", page)]
    assert {"短信", "回执", "居民"} <= set(cells) and not {"sms", "receipt", "resident"} & set(cells)  # labels
    response = client.post(
        "/admin/outboundmessage/action/",
        data={"csrf_token": csrf_token(client, "/admin/outboundmessage/"), "action": "retry", "rowid": receipt.id},
    )
    assert response.status_code == 302
    db.session.expire_all()
    assert db.session.get(OutboundMessage, receipt.id).status == "pending"
    auth.logout()
    auth.login("supervisor1")
    assert client.get("/admin/outboundmessage/").status_code in (302, 403, 404)


# -------------------------------------------------------------------------------- group robots


def robot_posts(provider, fragment: str) -> list[dict]:
    return [r for r in provider.requests if fragment in r["path"]]


def test_yellow_card_reaches_the_community_group_in_working_hours_only(ctx, robots):
    ref = make_case(now=at("2026-11-25T15:00"))  # 杏花村社区 (C01): WeCom; due 17:00
    sla.run_sweep(at("2026-11-25T19:00"))  # warning and yellow card in the evening
    rows = db.session.scalars(select(OutboundMessage).where(OutboundMessage.audience == "group")).all()
    assert [(m.channel, m.recipient, m.kind) for m in rows] == [("robot", "C01", "escalation_2")]
    assert rows[0].next_attempt_at == at("2026-11-26T08:30")  # quiet hours: the next working morning
    notify.deliver_pending(at("2026-11-25T19:01"))
    assert robot_posts(robots, "/cgi-bin/webhook/send") == []
    notify.deliver_pending(at("2026-11-26T08:31"))
    (post,) = robot_posts(robots, "/cgi-bin/webhook/send")
    assert post["path"] == "/cgi-bin/webhook/send?key=wecom-key-1"
    body = json.loads(post["body"])
    assert body["msgtype"] == "text" and ref in body["text"]["content"] and "黄牌" in body["text"]["content"]


def test_urgent_cases_reach_the_group_at_once(ctx, robots):
    ref = make_case(category="lift_entrapment", compound="X05", now=at("2026-11-25T19:00"))  # 清风社区: DingTalk
    assert load(ref).urgency == "urgent"
    sla.run_sweep(at("2026-11-25T19:31"))  # 30 calendar minutes
    notify.deliver_pending(at("2026-11-25T19:32"))
    (post,) = robot_posts(robots, "/robot/send")
    query = {k: v[0] for k, v in parse_qs(urlsplit(post["path"]).query).items()}
    assert query["access_token"] == "dtoken1"
    expected = base64.b64encode(
        hmac.new(b"SECdingsecret1", f"{query['timestamp']}\nSECdingsecret1".encode(), hashlib.sha256).digest()
    ).decode()
    assert unquote(query["sign"]) == expected or query["sign"] == expected
    assert ref in json.loads(post["body"])["text"]["content"]


def test_feishu_robot_and_failures(ctx, robots):
    RobotChannel().deliver("C03", Outgoing("红牌督办：案件 X 严重超时", "请立即处理"))
    (post,) = robot_posts(robots, "/open-apis/bot/v2/hook/")
    assert post["path"] == "/open-apis/bot/v2/hook/ftoken1/"
    body = json.loads(post["body"])
    assert (
        body["msg_type"] == "text" and "红牌督办" in body["content"]["text"] and "请立即处理" in body["content"]["text"]
    )
    robots.failures = [(500, {"code": 9499, "msg": "Bad Request"})]
    with pytest.raises(DeliveryError):
        RobotChannel().deliver("C03", Outgoing("红牌督办", ""))
    with pytest.raises(DeliveryError, match="no group robot"):
        RobotChannel().deliver("C99", Outgoing("红牌督办", ""))


# ------------------------------------------------------------------------------ staff preferences


def test_staff_choose_their_channels_and_quiet_hours_hold_mail(app, client, auth, monkeypatch):
    monkeypatch.setitem(app.config, "NOTIFY_CHANNELS", "log,smtp")
    monkeypatch.setitem(app.config, "SMTP_HOST", "smtp.invalid")
    with app.app_context():
        user("firm1").email = "firm1@example.org"
        user("grid1").email = "grid1@example.org"
        db.session.commit()
    auth.login("firm1")
    page = client.get("/inbox/channels").get_data(as_text=True)
    assert 'value="smtp"' in page and "checked" in page
    response = client.post("/inbox/channels", data={"csrf_token": csrf_token(client, "/inbox/channels")})
    assert response.status_code == 302
    with app.app_context():
        ref = make_case("firm_dispatched", now=at("2026-11-25T20:00"))
        mails = db.session.scalars(select(OutboundMessage).where(OutboundMessage.channel == "smtp")).all()
        assert {m.recipient for m in mails} == {"grid1@example.org"}  # firm1 chose the inbox only
        assert {m.next_attempt_at for m in mails} == {at("2026-11-26T08:30")}
        case = load(ref)
        services.fire(case, "firm_accept", user("firm1"), now=at("2026-11-25T20:05"))
        db.session.commit()
    client.post("/inbox/channels", data={"csrf_token": csrf_token(client, "/inbox/channels"), "channels": ["smtp"]})
    assert "checked" in client.get("/inbox/channels").get_data(as_text=True)


# ------------------------------------------------------------------------------------------ SMTP


class FakeSmtp:
    """A minimal SMTP server on 127.0.0.1 that records each message (and can refuse the next ones)."""

    def __init__(self):
        import socketserver

        self.messages: list[dict] = []
        self.refuse = 0
        owner = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str):
                self.wfile.write((line + "\r\n").encode())

            def handle(self):
                self.reply("220 fake ESMTP")
                envelope: dict = {"rcpt": []}
                while True:
                    line = self.rfile.readline().decode(errors="replace").strip()
                    if not line:
                        return
                    verb = line.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        self.reply("250 fake")
                    elif verb == "MAIL":
                        if owner.refuse:
                            owner.refuse -= 1
                            self.reply("451 4.3.0 try again later")
                            continue
                        envelope["from"] = line
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        envelope["rcpt"].append(line)
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 go ahead")
                        data = []
                        while (chunk := self.rfile.readline().decode()) not in (".\r\n", ""):
                            data.append(chunk)
                        envelope["data"] = "".join(data)
                        owner.messages.append(envelope)
                        envelope = {"rcpt": []}
                        self.reply("250 queued")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("250 OK")

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_smtp_delivers_to_a_local_server_and_retries(ctx, app, monkeypatch):
    from email import message_from_string
    from email.header import decode_header, make_header

    smtp = FakeSmtp()
    try:
        for key, value in {
            "NOTIFY_CHANNELS": "log,smtp",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": smtp.port,
            "SMTP_SENDER": "ksm@example.gov.cn",
        }.items():
            monkeypatch.setitem(app.config, key, value)
        user("firm1").email = "firm1@example.org"
        ref = make_case("firm_dispatched", category="lift_entrapment", now=at("2026-11-25T21:00"))  # urgent
        # firm1 gets two mails at once (urgent: no quiet hours): the alert at registration and the work order
        smtp.refuse = 1
        assert notify.deliver_pending(at("2026-11-25T21:00")).retried == 1  # 451 from the server for one
        assert len(smtp.messages) == 1
        result = notify.deliver_pending(at("2026-11-25T21:01"))
        assert result.retried == 0 and result.failed == 0
        assert len(smtp.messages) == 2  # the retry went through
        for mail in smtp.messages:
            parsed = message_from_string(mail["data"])
            assert parsed["To"] == "firm1@example.org" and parsed["From"] == "ksm@example.gov.cn"
            assert ref in str(make_header(decode_header(parsed["Subject"])))
    finally:
        smtp.close()


def test_a_numbers_quota_holds_whatever_the_routings_cap(ctx, app, aliyun, monkeypatch):
    """The SMS standing is read in the statement that also counts the grid workers' loads (PostgreSQL): each read
    binds its own cap. (They shared one name, and the routing's cap of 1 made the count stop at 1: the quota of 3
    was never reached.)"""
    monkeypatch.setitem(app.config, "SMS_MAX_PER_RECIPIENT_PER_DAY", 3)
    monkeypatch.setattr(services, "ROUTING_LOAD_CAP", 1)
    refs = [make_case(now=WED_0900 + timedelta(minutes=i)) for i in range(4)]
    assert [resident_rows(load(ref))[0].status for ref in refs] == ["pending", "pending", "pending", "skipped"]


def test_the_allocation_refuses_two_reads_binding_one_name_to_two_values(ctx):
    from sqlalchemy import bindparam, literal_column

    from app.cases import refs
    from tests.conftest import IS_POSTGRES

    if not IS_POSTGRES:
        pytest.skip("the allocation statement is PostgreSQL's")
    first = literal_column("1") + bindparam("cap")
    second = literal_column("2") + bindparam("cap")
    with pytest.raises(ValueError, match="'cap'"):
        refs.allocate(None, None, {}, {"a": (first, {"cap": 5}), "b": (second, {"cap": 200})})
    db.session.rollback()


def test_the_reminder_and_quota_queries_use_their_indexes(ctx):
    from sqlalchemy import text

    bind = db.session.get_bind()
    query = resident.reminder_query(WED_0900, WED_0900 + timedelta(hours=24))
    sql = str(query.compile(bind, compile_kwargs={"literal_binds": True}))
    # opt-out and the number's quota, as an intake asks
    standing = resident.standing_query().params(phone="13912345678", cap=10, **resident._today(WED_0900))
    quota = str(standing.compile(bind, compile_kwargs={"literal_binds": True}))
    plans = []
    for statement in (sql, quota):
        if bind.dialect.name == "postgresql":
            db.session.execute(text("SET LOCAL enable_seqscan = off"))
            plans.append("\n".join(r[0] for r in db.session.execute(text("EXPLAIN " + statement))))
        else:
            plans.append("\n".join(str(r[-1]) for r in db.session.execute(text("EXPLAIN QUERY PLAN " + statement))))
    assert "ix_case_signoff_due" in plans[0], plans[0]
    assert "ix_outbound_message_resident_counted" in plans[1], plans[1]  # the number's counted messages of today
    assert "Seq Scan" not in plans[1] and "SCAN outbound_message" not in plans[1], plans[1]  # all by index


def test_stale_resident_messages_are_dropped_not_sent_late(ctx, aliyun):
    case = load(make_case(now=WED_0900))
    notify.deliver_pending(WED_0900 + timedelta(days=3))  # the scheduler was down for three days
    (receipt,) = resident_rows(case)
    assert receipt.status == "skipped" and "stale" in receipt.last_error
    assert not [r for r in aliyun.requests if r["headers"].get("x-acs-action")]


def test_demo_data_never_texts_its_made_up_residents(ctx):
    make_case(now=WED_0900)
    assert resident.hold_demo_messages() >= 1
    pending = db.session.scalars(
        select(OutboundMessage).where(OutboundMessage.audience == "resident", OutboundMessage.status == "pending")
    ).all()
    assert pending == []
