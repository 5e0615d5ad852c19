"""Outbound channels behind one interface. A channel raises :class:`DeliveryError` when a send fails."""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage

from flask import current_app

log = logging.getLogger("ksm.notify")


class DeliveryError(Exception):
    """The message could not be delivered now; it will be retried."""


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


class SmsChannel(Channel):
    """The slot for an SMS gateway: subclass it, implement :meth:`send`, and register it in ``CHANNELS``."""

    name = "sms"

    def address_of(self, user) -> str | None:
        return user.phone or None

    def send(self, recipient: str, subject: str, body: str) -> None:
        raise DeliveryError("no SMS gateway is configured")


CHANNELS: dict[str, type[Channel]] = {"log": LogChannel, "smtp": SmtpChannel, "sms": SmsChannel}


def enabled_channels() -> list[Channel]:
    """The channels named in ``NOTIFY_CHANNELS`` (comma-separated); SMTP only when ``SMTP_HOST`` is set."""
    names = [n.strip() for n in (current_app.config.get("NOTIFY_CHANNELS") or "log").split(",") if n.strip()]
    channels = []
    for name in names:
        factory = CHANNELS.get(name)
        if factory is None:
            log.warning("unknown notification channel %r ignored", name)
            continue
        if name == "smtp" and not current_app.config.get("SMTP_HOST"):
            log.warning("SMTP channel enabled but SMTP_HOST is not set; ignored")
            continue
        channels.append(factory())
    return channels
