"""Scheduler process management (the sweep arrives with the time-limits feature)."""

from __future__ import annotations


def start_embedded_scheduler(app):
    """Start the background scheduler inside this process; returns it (or None when nothing to run)."""
    return None
