"""Locale helpers for texts that come as data in both languages (workflow labels, category names)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache

from babel import Locale
from flask import g, has_app_context
from flask_babel import LazyString, get_locale, get_translations
from flask_babel import force_locale as _babel_force_locale

#: Flask-Babel (4.0) keeps a request's locale and translations on ``g._flask_babel``; ``force_locale``
#: puts a new locale object there and restores the old one afterwards
_BABEL_CONTEXT = "_flask_babel"


def _current() -> tuple:
    """``(locale, translations, is_english)`` of the current locale, remembered on Flask-Babel's context
    for as long as its locale object stays the same (a page asks this a few hundred times; Flask-Babel's
    own look-up walks the context, the locale selector's result and the catalogue cache every time)."""
    ctx = g.get(_BABEL_CONTEXT) if has_app_context() else None
    locale = getattr(ctx, "babel_locale", None)
    memo = getattr(ctx, "ksm_memo", None)
    if locale is not None and memo is not None and memo[0] is locale:
        return memo
    locale = get_locale()
    memo = (locale, get_translations(), bool(locale) and str(locale).startswith("en"))
    ctx = g.get(_BABEL_CONTEXT) if has_app_context() else None
    if locale is not None and getattr(ctx, "babel_locale", None) is locale:
        ctx.ksm_memo = memo
    return memo


@lru_cache(maxsize=16)
def _parsed(identifier: str) -> Locale:
    return Locale.parse(identifier)


def force_locale(locale: str | Locale | None) -> AbstractContextManager:
    """Flask-Babel's ``force_locale``, with each locale parsed once per process: Flask-Babel parses the name
    on every call (a new ``Locale``, which looks for its data file on disk), and an API call forces a locale
    two or three times. The same ``Locale`` object also keeps :func:`_current`'s memo valid."""
    return _babel_force_locale(_parsed(locale) if isinstance(locale, str) else locale)


def translations():
    """The gettext catalogue of the current locale (what templates translate with)."""
    return _current()[1]


def is_english() -> bool:
    """Whether the current locale (request, or CLI/scheduler outside requests) is English."""
    if not has_app_context():
        return False
    return _current()[2]


def install_template_gettext(app) -> None:
    """Templates translate through :func:`translations` (Flask-Babel's callables, made faster)."""
    app.jinja_env.install_gettext_callables(
        gettext=lambda s: translations().ugettext(s),
        ngettext=lambda s, p, n: translations().ungettext(s, p, n),
        pgettext=lambda c, s: translations().upgettext(c, s),
        npgettext=lambda c, s, p, n: translations().unpgettext(c, s, p, n),
        newstyle=True,
    )


def pick(labels: dict[str, str]) -> str:
    """Choose the ``en`` or ``zh`` text of a bilingual label for the current locale."""
    return labels["en"] if is_english() else labels["zh"]


def lazy_pick(labels: dict[str, str]) -> LazyString:
    """Like :func:`pick`, evaluated when rendered (for labels defined at import time)."""
    return LazyString(lambda: pick(labels))
