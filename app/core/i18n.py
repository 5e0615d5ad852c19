"""Locale helpers for texts that come as data in both languages (workflow labels, category names)."""

from __future__ import annotations

from flask import has_app_context
from flask_babel import LazyString, get_locale


def is_english() -> bool:
    """Whether the current locale (request, or CLI/scheduler outside requests) is English."""
    if not has_app_context():
        return False
    locale = get_locale()
    return bool(locale) and str(locale).startswith("en")


def pick(labels: dict[str, str]) -> str:
    """Choose the ``en`` or ``zh`` text of a bilingual label for the current locale."""
    return labels["en"] if is_english() else labels["zh"]


def lazy_pick(labels: dict[str, str]) -> LazyString:
    """Like :func:`pick`, evaluated when rendered (for labels defined at import time)."""
    return LazyString(lambda: pick(labels))
