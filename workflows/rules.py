"""Named conditions and resolution rules used by the transitions.

A condition reads the validated ``inputs`` of the trigger and a ``context`` of facts about the case
(``reopen_count``, ``resolved_on_site``, ``branch_approved``, ``closed_at``, ``now``). Conditions
that do not read inputs also decide whether an action is offered at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from workflows import definitions as d


@dataclass(frozen=True)
class Rule:
    name: str
    check: Callable[[Mapping[str, Any], Mapping[str, Any]], bool]
    uses_inputs: bool
    #: why it failed, for the refusal message
    zh: str = ""
    en: str = ""


def _accepted(inputs, _context) -> bool:
    return bool(inputs.get("resolved")) and inputs.get("satisfaction") in ("satisfied", "basic")


RULES: dict[str, Rule] = {
    r.name: r
    for r in (
        Rule("signoff_accepted", _accepted, True),
        Rule("signoff_rejected", lambda i, c: not _accepted(i, c), True),
        Rule(
            "reopen_limit_reached",
            lambda i, c: c.get("reopen_count", 0) >= c.get("max_reopens", d.MAX_REOPENS_BY_SIGNOFF),
            False,
        ),
        Rule("resolved_on_site", lambda i, c: bool(c.get("resolved_on_site")), False),
        Rule(
            "branch_has_approved",
            lambda i, c: bool(c.get("branch_approved")),
            False,
            "先议事项须经支部先议通过后才能派单给物业，请先提交支部先议。",
            "A pre-deliberation matter goes to the firm only after the party branch approves it: "
            "refer it to the branch first.",
        ),
        Rule(
            "within_reopen_window",
            lambda i, c: _within_reopen_window(c),
            False,
            f"办结超过 {d.REOPEN_WINDOW_DAYS} 天的诉求不能重新办理，请登记新诉求。",
            f"A case closed more than {d.REOPEN_WINDOW_DAYS} days ago cannot be reopened: register a new case.",
        ),
    )
}


def _within_reopen_window(context: Mapping[str, Any]) -> bool:
    closed_at, now = context.get("closed_at"), context.get("now")
    if closed_at is None or now is None:
        return True
    return now - closed_at <= timedelta(days=d.REOPEN_WINDOW_DAYS)


def resolve(transition: d.Transition, inputs: Mapping[str, Any]) -> str | None:
    """The closing resolution a transition records, if it closes the case."""
    rule = transition.resolution
    if rule is None:
        return None
    if rule == "satisfaction":
        return d.RESOLVED_SATISFIED if inputs.get("satisfaction") == "satisfied" else d.RESOLVED_BASIC
    if rule == "invalid_reason":
        return {"duplicate": d.DUPLICATE, "withdrawn": d.WITHDRAWN}.get(inputs.get("reason"), d.INVALID)
    return rule
