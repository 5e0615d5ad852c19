"""Residents' phone numbers never reach a log: every log record is masked when it is created.

A record factory (not a handler filter) so that every logger is covered — ours, Werkzeug's request
lines (a search ``/cases?q=139…`` carries the number in its URL), gunicorn's access log, libraries —
whatever handler later writes it.
"""

from __future__ import annotations

import logging
import re

#: a mainland mobile number, also written with spaces or dashes (138 1234 5678)
MOBILE = re.compile(r"(?<!\d)(1[3-9]\d)(?:[\s-]?\d){4}((?:[\s-]?\d){4})(?!\d)")


def mask_phones(text: str) -> str:
    """``13812345678`` → ``138****5678`` wherever a mobile number appears in ``text``."""
    return MOBILE.sub(lambda m: m.group(1) + "****" + re.sub(r"[\s-]", "", m.group(2)), text)


def install() -> None:
    """Wrap the current log record factory once (idempotent)."""
    current = logging.getLogRecordFactory()
    if getattr(current, "_masks_phones", False):
        return

    def factory(*args, **kwargs):
        record = current(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is the handler's to report
            return record
        masked = mask_phones(message)
        if masked != message:
            record.msg, record.args = masked, ()
        return record

    factory._masks_phones = True
    logging.setLogRecordFactory(factory)
