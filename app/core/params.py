"""Reading ids and instants from untrusted text (forms, query strings, CLI) without surprises."""

from __future__ import annotations

import re
from datetime import datetime

MAX_ID = 2**31 - 1
MIN_YEAR, MAX_YEAR = 1900, 9998
_ASCII_DIGITS = re.compile(r"^[0-9]{1,10}$")


def parse_id(value) -> int | None:
    """A database id (1 … 2³¹−1) from an int or ASCII digits, else None (never raises)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 1 <= value <= MAX_ID else None
    text = str(value or "").strip()
    if not _ASCII_DIGITS.match(text):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


def reasonable_instant(value: datetime) -> bool:
    """Whether a datetime lies in years the database and time-zone arithmetic handle safely."""
    return MIN_YEAR <= value.year <= MAX_YEAR
