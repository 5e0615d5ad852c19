"""Notifications: an in-app inbox always, plus outbound channels (log, SMTP e-mail, SMS adapter)."""
