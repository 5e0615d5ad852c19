"""Demo cases in every state (filled in with the workflow engine)."""

from __future__ import annotations


def seed_demo_cases(users) -> int:
    return 0
