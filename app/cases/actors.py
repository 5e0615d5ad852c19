"""Actors without an account: the system (timers, routing) and a resident (sign-off link)."""

from __future__ import annotations

from dataclasses import dataclass

from workflows.definitions import RESIDENT, SYSTEM


@dataclass(frozen=True)
class SystemActor:
    id: None = None
    role: str = SYSTEM
    display_name: str = "system"
    is_active: bool = True


@dataclass(frozen=True)
class ResidentActor:
    """A resident acting on their own case, proven by the sign-off token or reference + phone digits."""

    case_id: int
    id: None = None
    role: str = RESIDENT
    display_name: str = "resident"
    is_active: bool = True


SYSTEM_ACTOR = SystemActor()


def is_person(actor) -> bool:
    """True for a staff account (not the system or a resident)."""
    return getattr(actor, "role", None) not in (SYSTEM, RESIDENT)
