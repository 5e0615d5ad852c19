"""Time limits on cases (filled in by the time-limits feature)."""

from __future__ import annotations


def on_registered(case, now) -> None:
    """A case was registered."""


def on_transition(case, event, source, now) -> None:
    """A case changed state."""


def on_reassigned(case, event, now) -> None:
    """A case got a new handler."""
