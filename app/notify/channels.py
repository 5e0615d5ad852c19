"""Outbound channels behind one interface. A channel raises :class:`DeliveryError` when a send fails.

- ``log`` (console): writes to the application log — development, and the fallback when nothing else is set;
- ``smtp``: e-mail to staff;
- ``sms``: template SMS through the configured provider (Alibaba Cloud or Tencent Cloud, official SDKs);
  Chinese SMS carry a pre-approved template id, the signature and the template's parameters, never free text;
- ``robot``: a community's WeCom / DingTalk / Feishu group robot (through ``apprise``'s plugins).

Credentials and webhook keys come only from the environment (``config.py``); the database stores a
community code as the robot's address, never its key.
"""

from __future__ import annotations

import json
import logging
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger("ksm.notify")

#: each SMS template's parameters, in the order Tencent's TemplateParamSet expects them
SMS_PARAMS: dict[str, tuple[str, ...]] = {
    "receipt": ("ref", "link"),
    "work_done": ("ref", "link", "code"),
    "signoff_reminder": ("ref", "link", "date"),
    "staff_alert": ("ref", "title"),
}
#: the longest value a template parameter may carry (providers cap variables; links are the longest)
SMS_PARAM_MAX = 100


class DeliveryError(Exception):
    """The message could not be delivered now; it will be retried."""


@dataclass
class Outgoing:
    """One message as a channel sees it: readable text, plus the kind and parameters for templates."""

    subject: str
    body: str
    kind: str | None = None
    params: dict[str, str] = field(default_factory=dict)


class Channel:
    """Send one message. ``address_of(user)`` says where, or None when the user has no address here.

    ``immediate`` channels cannot fail (the log): they send at once instead of going through the outbox.
    """

    name = "base"
    immediate = False

    def address_of(self, user) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def send(self, recipient: str, subject: str, body: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def deliver(self, recipient: str, message: Outgoing) -> None:
        """Send ``message``; text channels send its subject and body. Raises :class:`DeliveryError`."""
        self.send(recipient, message.subject, message.body)


class LogChannel(Channel):
    """Writes each notification to the application log (the default; useful in development)."""

    name = "log"
    immediate = True

    def address_of(self, user) -> str | None:
        return user.username

    def send(self, recipient: str, subject: str, body: str) -> None:
        if body and body != subject:
            log.info("notification to %s: %s — %s", recipient, subject, body)
        else:
            log.info("notification to %s: %s", recipient, subject)


class SmtpChannel(Channel):
    """E-mail through the SMTP server configured by ``SMTP_HOST`` and friends."""

    name = "smtp"

    def address_of(self, user) -> str | None:
        return user.email or None

    def send(self, recipient: str, subject: str, body: str) -> None:
        config = current_app.config
        message = EmailMessage()
        message["From"] = config["SMTP_SENDER"]
        message["To"] = recipient
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(config["SMTP_HOST"], config["SMTP_PORT"], timeout=15) as server:
                if config.get("SMTP_STARTTLS"):
                    server.starttls()
                if config.get("SMTP_USERNAME"):
                    server.login(config["SMTP_USERNAME"], config.get("SMTP_PASSWORD") or "")
                server.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryError(f"SMTP: {error}") from error


# ---------------------------------------------------------------------------------------------- SMS


def sms_templates() -> dict[str, str]:
    """``SMS_TEMPLATES`` ("receipt=SMS_1,work_done=SMS_2") as kind → template id."""
    pairs = (item.split("=", 1) for item in (current_app.config.get("SMS_TEMPLATES") or "").split(",") if "=" in item)
    return {kind.strip(): template.strip() for kind, template in pairs if kind.strip() and template.strip()}


def sms_ready() -> bool:
    """Whether a provider is configured (otherwise resident messages go to the console log)."""
    return (current_app.config.get("SMS_PROVIDER") or "").lower() in SMS_PROVIDERS


class SmsProvider:
    """A template SMS gateway: ``send_template`` raises :class:`DeliveryError` when the provider refuses."""

    name = "base"

    def send_template(self, phone: str, sign_name: str, template_id: str, params: dict[str, str]) -> str:
        """Send one SMS; returns the provider's message id."""
        raise NotImplementedError  # pragma: no cover - interface


class AliyunSms(SmsProvider):
    """Alibaba Cloud SMS (``alibabacloud-dysmsapi20170525``): named parameters as a JSON object."""

    name = "aliyun"

    def send_template(self, phone, sign_name, template_id, params):
        from alibabacloud_dysmsapi20170525 import models as sms_models
        from alibabacloud_dysmsapi20170525.client import Client
        from alibabacloud_tea_openapi import models as api_models
        from alibabacloud_tea_util import models as util_models

        config = current_app.config
        if not (config.get("ALIYUN_ACCESS_KEY_ID") and config.get("ALIYUN_ACCESS_KEY_SECRET")):
            raise DeliveryError("Aliyun SMS: ALIYUN_ACCESS_KEY_ID / ALIYUN_ACCESS_KEY_SECRET are not set")
        client = Client(
            api_models.Config(
                access_key_id=config["ALIYUN_ACCESS_KEY_ID"],
                access_key_secret=config["ALIYUN_ACCESS_KEY_SECRET"],
                endpoint=config["ALIYUN_SMS_ENDPOINT"],
                protocol=config["ALIYUN_SMS_PROTOCOL"],
            )
        )
        request = sms_models.SendSmsRequest(
            phone_numbers=phone,
            sign_name=sign_name,
            template_code=template_id,
            template_param=json.dumps(params, ensure_ascii=False),
        )
        # our outbox retries with back-off; the SDK must not retry on its own
        runtime = util_models.RuntimeOptions(autoretry=False, connect_timeout=5000, read_timeout=10000)
        try:
            response = client.send_sms_with_options(request, runtime)
        except Exception as error:  # noqa: BLE001 - Tea raises its own exception types for HTTP and API errors
            raise DeliveryError(f"Aliyun SMS: {error}") from error
        body = response.body
        if body is None or body.code != "OK":
            raise DeliveryError(f"Aliyun SMS: {getattr(body, 'code', '?')} {getattr(body, 'message', '')}")
        return body.biz_id or ""


class TencentSms(SmsProvider):
    """Tencent Cloud SMS (``tencentcloud-sdk-python-sms``, API 2021-01-11): parameters as an ordered list."""

    name = "tencent"

    def send_template(self, phone, sign_name, template_id, params):
        from tencentcloud.common import credential
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.sms.v20210111 import models, sms_client

        config = current_app.config
        if not (
            config.get("TENCENT_SECRET_ID") and config.get("TENCENT_SECRET_KEY") and config.get("TENCENT_SMS_APP_ID")
        ):
            raise DeliveryError("Tencent SMS: TENCENT_SECRET_ID / TENCENT_SECRET_KEY / TENCENT_SMS_APP_ID are not set")
        profile = HttpProfile(
            protocol=config["TENCENT_SMS_PROTOCOL"], endpoint=config["TENCENT_SMS_ENDPOINT"], reqTimeout=10
        )
        client = sms_client.SmsClient(
            credential.Credential(config["TENCENT_SECRET_ID"], config["TENCENT_SECRET_KEY"]),
            config["TENCENT_SMS_REGION"],
            ClientProfile(httpProfile=profile),
        )
        request = models.SendSmsRequest()
        request.SmsSdkAppId = config["TENCENT_SMS_APP_ID"]
        request.SignName = sign_name
        request.TemplateId = template_id
        request.TemplateParamSet = list(params.values())
        request.PhoneNumberSet = [phone if phone.startswith("+") else "+86" + phone]
        try:
            response = client.SendSms(request)
        except TencentCloudSDKException as error:
            raise DeliveryError(f"Tencent SMS: {error.code} {error.message}") from error
        except Exception as error:  # noqa: BLE001 - network errors surface as requests/OS errors
            raise DeliveryError(f"Tencent SMS: {error}") from error
        status = (response.SendStatusSet or [None])[0]
        if status is None or status.Code != "Ok":
            raise DeliveryError(f"Tencent SMS: {getattr(status, 'Code', '?')} {getattr(status, 'Message', '')}")
        return status.SerialNo or ""


SMS_PROVIDERS: dict[str, type[SmsProvider]] = {"aliyun": AliyunSms, "tencent": TencentSms}


class SmsChannel(Channel):
    """Template SMS through ``SMS_PROVIDER``; the message kind picks the template (``SMS_TEMPLATES``)."""

    name = "sms"

    def address_of(self, user) -> str | None:
        return user.phone or None

    def send(self, recipient: str, subject: str, body: str) -> None:
        self.deliver(recipient, Outgoing(subject, body, "staff_alert", {"ref": "", "title": subject}))

    def deliver(self, recipient: str, message: Outgoing) -> None:
        config = current_app.config
        provider = SMS_PROVIDERS.get((config.get("SMS_PROVIDER") or "").lower())
        if provider is None:
            raise DeliveryError("no SMS provider is configured (SMS_PROVIDER=aliyun or tencent)")
        kind = message.kind if message.kind in SMS_PARAMS else "staff_alert"
        template = sms_templates().get(kind)
        if not template:
            raise DeliveryError(f"no SMS template for {kind!r} in SMS_TEMPLATES")
        if not config.get("SMS_SIGN_NAME"):
            raise DeliveryError("SMS_SIGN_NAME (the approved signature) is not set")
        params = {name: str(message.params.get(name, ""))[:SMS_PARAM_MAX] for name in SMS_PARAMS[kind]}
        provider().send_template(recipient, config["SMS_SIGN_NAME"], template, params)


# ------------------------------------------------------------------------------------ group robots


@dataclass(frozen=True)
class Robot:
    kind: str  # wecom, dingtalk, feishu
    token: str
    secret: str | None = None


ROBOT_KINDS = ("wecom", "dingtalk", "feishu")


def group_robots() -> dict[str, Robot]:
    """``GROUP_ROBOTS`` ("C01=wecom:KEY;C02=dingtalk:TOKEN:SECRET") as community code → robot."""
    robots = {}
    for item in (current_app.config.get("GROUP_ROBOTS") or "").split(";"):
        code, _sep, spec = item.partition("=")
        parts = spec.strip().split(":")
        if not code.strip() or len(parts) < 2 or parts[0] not in ROBOT_KINDS or not parts[1]:
            if item.strip():
                log.warning("GROUP_ROBOTS entry %r ignored: use CODE=wecom|dingtalk|feishu:TOKEN[:SECRET]", code)
            continue
        robots[code.strip()] = Robot(parts[0], parts[1], parts[2] if len(parts) > 2 and parts[2] else None)
    return robots


def _robot_plugin(robot: Robot):
    """An apprise plugin for ``robot`` pointed at the configured webhook base (loopback in tests)."""
    from apprise.exception import AppriseException

    config = current_app.config
    try:
        if robot.kind == "wecom":
            from apprise.plugins.wecombot import NotifyWeComBot

            plugin = NotifyWeComBot(key=robot.token)
            plugin.api_url = f"{config['WECOM_WEBHOOK_BASE'].rstrip('/')}/cgi-bin/webhook/send?key={plugin.key}"
        elif robot.kind == "dingtalk":
            from apprise.plugins.dingtalk import NotifyDingTalk

            plugin = NotifyDingTalk(token=robot.token, secret=robot.secret)
            plugin.notify_url = config["DINGTALK_WEBHOOK_BASE"].rstrip("/") + "/robot/send?access_token={token}"
        else:
            from apprise.plugins.feishu import NotifyFeishu

            plugin = NotifyFeishu(token=robot.token)
            plugin.notify_url = config["FEISHU_WEBHOOK_BASE"].rstrip("/") + "/open-apis/bot/v2/hook/{token}/"
    except (AppriseException, TypeError) as error:
        raise DeliveryError(f"{robot.kind} robot misconfigured: {error}") from error
    plugin.request_rate_per_sec = 0  # our outbox paces and retries
    return plugin


class RobotChannel(Channel):
    """A community's staff group robot; the address is the community code, the key is in ``GROUP_ROBOTS``."""

    name = "robot"

    def address_of(self, user) -> str | None:
        return None  # robots post to groups, not to people

    def send(self, recipient: str, subject: str, body: str) -> None:
        self.deliver(recipient, Outgoing(subject, body))

    def deliver(self, recipient: str, message: Outgoing) -> None:
        robot = group_robots().get(recipient)
        if robot is None:
            raise DeliveryError(f"no group robot configured for community {recipient}")
        text = (
            message.subject
            if not message.body or message.body == message.subject
            else f"{message.subject}\n{message.body}"
        )
        if not _robot_plugin(robot).send(body=text, title=""):
            raise DeliveryError(f"{robot.kind} robot refused the message or could not be reached")


CHANNELS: dict[str, type[Channel]] = {
    "log": LogChannel,
    "smtp": SmtpChannel,
    "sms": SmsChannel,
    "robot": RobotChannel,
}
#: channels a user may choose for their own notifications
PERSONAL_CHANNELS = ("smtp", "sms")


def enabled_channels() -> list[Channel]:
    """The channels named in ``NOTIFY_CHANNELS`` (comma-separated); SMTP only when ``SMTP_HOST`` is set,
    SMS only when a provider is configured."""
    names = [n.strip() for n in (current_app.config.get("NOTIFY_CHANNELS") or "log").split(",") if n.strip()]
    channels = []
    for name in names:
        factory = CHANNELS.get(name)
        if factory is None or name == "robot":
            log.warning("unknown notification channel %r ignored", name)
            continue
        if name == "smtp" and not current_app.config.get("SMTP_HOST"):
            log.warning("SMTP channel enabled but SMTP_HOST is not set; ignored")
            continue
        if name == "sms" and not sms_ready():
            log.warning("SMS channel enabled but SMS_PROVIDER is not aliyun or tencent; ignored")
            continue
        channels.append(factory())
    return channels
