"""The engine: one shared ``transitions.Machine`` per workflow, fired on a light token.

The application loads a case, asks :meth:`Engine.fire` to move it with the actor's role, the trigger's
inputs and a context of facts, and stores the outcome. Nothing here touches a database: the machine
works on a :class:`_Token` holding only the state, so a refused or failed transition never leaves a
half-changed case behind.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from transitions import Machine, MachineError

from workflows import definitions as d
from workflows.rules import RULES, resolve

TRUE_WORDS = {"1", "true", "yes", "on", "y", "是"}
FALSE_WORDS = {"0", "false", "no", "off", "n", "否"}


class WorkflowError(Exception):
    """Base class of refusals. ``code`` is machine-readable; the app turns the fields into a message."""

    code = "workflow_error"


class UnknownTrigger(WorkflowError):
    code = "unknown_trigger"

    def __init__(self, trigger: str):
        super().__init__(f"unknown trigger {trigger!r}")
        self.trigger = trigger


class TriggerNotAllowed(WorkflowError):
    """The trigger does not leave the current state (HTTP 409)."""

    code = "trigger_not_allowed"

    def __init__(self, state: str, trigger: str, allowed: list[str]):
        super().__init__(f"{trigger} is not possible from {state}; allowed: {', '.join(allowed) or 'none'}")
        self.state, self.trigger, self.allowed = state, trigger, allowed


class RoleNotAllowed(WorkflowError):
    """The actor's role may not fire this trigger (HTTP 403)."""

    code = "role_not_allowed"

    def __init__(self, trigger: str, role: str, roles: list[str], allowed: list[str]):
        super().__init__(f"{role} may not {trigger}; it is for {', '.join(roles)}")
        self.trigger, self.role, self.roles, self.allowed = trigger, role, roles, allowed


class ConditionFailed(WorkflowError):
    """A rule of the case refuses the trigger now (HTTP 409)."""

    code = "condition_failed"

    def __init__(self, trigger: str, rule: str | None, allowed: list[str]):
        super().__init__(f"{trigger} refused by rule {rule}")
        self.trigger, self.rule, self.allowed = trigger, rule, allowed


class InputInvalid(WorkflowError):
    """Inputs are missing or malformed (HTTP 422). ``errors`` maps input name → error code."""

    code = "invalid_input"

    def __init__(self, trigger: str, errors: dict[str, str]):
        super().__init__(f"{trigger}: " + ", ".join(f"{k} {v}" for k, v in errors.items()))
        self.trigger, self.errors = trigger, errors


@dataclass
class Outcome:
    trigger: str
    source: str
    dest: str
    resolution: str | None
    inputs: dict[str, Any]
    transition: d.Transition


@dataclass
class _Token:
    """What the machine moves: a state and, once fired, the transition it took."""

    state: str
    taken: d.Transition | None = field(default=None)


def clean_inputs(trigger: d.Trigger, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise a trigger's inputs. Raises :class:`InputInvalid` listing every problem."""
    cleaned: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in trigger.inputs:
        value = raw.get(spec.name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            needed = spec.required
            if spec.required_if is not None:
                other, expected = spec.required_if
                needed = raw.get(other) == expected
            if needed:
                errors[spec.name] = "required"
            continue
        if spec.kind in ("text", "case_ref"):
            text = str(value)
            if len(text) > spec.max_length:
                errors[spec.name] = "too_long"
                continue
            cleaned[spec.name] = text.upper() if spec.kind == "case_ref" else text
        elif spec.kind == "choice":
            if value not in {code for code, _zh, _en in spec.choices}:
                errors[spec.name] = "invalid_choice"
                continue
            cleaned[spec.name] = value
        elif spec.kind == "bool":
            if isinstance(value, bool):
                cleaned[spec.name] = value
            elif str(value).lower() in TRUE_WORDS:
                cleaned[spec.name] = True
            elif str(value).lower() in FALSE_WORDS:
                cleaned[spec.name] = False
            else:
                errors[spec.name] = "invalid_bool"
        else:  # pragma: no cover - definitions only use the kinds above
            cleaned[spec.name] = value
    if errors:
        raise InputInvalid(trigger.name, errors)
    return cleaned


class Engine:
    """Runs one workflow. Build once per workflow (see :func:`get_engine`) and share it."""

    def __init__(self, workflow: d.Workflow):
        self.workflow = workflow
        self._by_trigger: dict[tuple[str, str], list[d.Transition]] = {}
        specs = []
        for transition in workflow.transitions:
            self._by_trigger.setdefault((transition.source, transition.trigger), []).append(transition)
            specs.append(
                {
                    "trigger": transition.trigger,
                    "source": transition.source,
                    "dest": transition.dest,
                    "conditions": [partial(self._condition, name) for name in transition.conditions],
                    "after": [partial(self._record, transition)],
                }
            )
        self.machine = Machine(
            model=None, states=list(d.STATES), transitions=specs, initial=None, auto_transitions=False, send_event=True
        )

    @staticmethod
    def _condition(name: str, event) -> bool:
        return RULES[name].check(event.kwargs.get("inputs", {}), event.kwargs.get("context", {}))

    @staticmethod
    def _record(transition: d.Transition, event) -> None:
        event.model.taken = transition

    def _context_allows(self, transition: d.Transition, context: Mapping[str, Any]) -> str | None:
        """None when the conditions that do not read inputs hold, else the first failing rule."""
        for name in transition.conditions:
            rule = RULES[name]
            if not rule.uses_inputs and not rule.check({}, context):
                return name
        return None

    def triggers_from(self, state: str) -> list[str]:
        return self.workflow.triggers_from(state)

    def possible(self, state: str, role: str | None, context: Mapping[str, Any] | None = None) -> list[str]:
        """Triggers this role could fire from ``state`` now (inputs not yet considered)."""
        context = context or {}
        result = []
        for name in self.workflow.triggers_from(state):
            trigger = d.TRIGGERS[name]
            if role is not None and role not in trigger.roles:
                continue
            if any(self._context_allows(t, context) is None for t in self._by_trigger[(state, name)]):
                result.append(name)
        return result

    def check(self, state: str, trigger: str, role: str, context: Mapping[str, Any] | None = None) -> d.Trigger:
        """Raise the refusal that firing ``trigger`` now would meet, before any input is read."""
        context = context or {}
        spec = d.TRIGGERS.get(trigger)
        if spec is None:
            raise UnknownTrigger(trigger)
        transitions = self._by_trigger.get((state, trigger))
        if not transitions:
            raise TriggerNotAllowed(state, trigger, self.possible(state, role, context))
        if role not in spec.roles:
            raise RoleNotAllowed(trigger, role, sorted(spec.roles), self.possible(state, role, context))
        failures = [self._context_allows(t, context) for t in transitions]
        if all(failures):
            rule = next((f for f in failures if RULES[f].zh), failures[0])
            raise ConditionFailed(trigger, rule, self.possible(state, role, context))
        return spec

    def fire(
        self,
        state: str,
        trigger: str,
        role: str,
        inputs: Mapping[str, Any] | None = None,
        context: Mapping[str, Any] | None = None,
    ) -> Outcome:
        """Move a case in ``state`` by ``trigger`` for an actor of ``role``.

        Raises :class:`UnknownTrigger`, :class:`TriggerNotAllowed`, :class:`RoleNotAllowed`,
        :class:`ConditionFailed` or :class:`InputInvalid`; returns the :class:`Outcome` otherwise.
        """
        context = context or {}
        spec = self.check(state, trigger, role, context)
        cleaned = clean_inputs(spec, inputs or {})
        token = _Token(state)
        try:
            moved = self.machine.events[trigger].trigger(token, inputs=cleaned, context=context)
        except MachineError:  # pragma: no cover - check() has ruled this out
            raise TriggerNotAllowed(state, trigger, self.possible(state, role, context)) from None
        if not moved or token.taken is None:
            raise ConditionFailed(trigger, None, self.possible(state, role, context))
        return Outcome(trigger, state, token.state, resolve(token.taken, cleaned), cleaned, token.taken)


_ENGINES: dict[str, Engine] = {name: Engine(workflow) for name, workflow in d.WORKFLOWS.items()}


def get_engine(workflow: str) -> Engine:
    """The shared engine of a workflow. Raises ``KeyError`` for an unknown workflow name."""
    return _ENGINES[workflow]
