"""Administration screen for Open311 API keys (to be filled in)."""

from __future__ import annotations


def register(admin) -> None:
    """Add the Open311 key screens to the administration."""
