"""The workflow definitions and engine on their own (no app, no database): every transition of every
workflow works, and every other trigger from every state is refused, for every role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from workflows import definitions as d
from workflows.engine import (
    ConditionFailed,
    InputInvalid,
    RoleNotAllowed,
    TriggerNotAllowed,
    UnknownTrigger,
    clean_inputs,
    get_engine,
)

ROLES = (d.CLERK, d.GRID_WORKER, d.PROPERTY_MANAGER, d.BRANCH_SECRETARY, d.SUPERVISOR, d.ADMIN, d.RESIDENT, d.SYSTEM)
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
VALID = {
    "grid_accept": {},
    "resolve_on_site": {"result": "已现场疏通"},
    "dispatch_to_firm": {"note": "已核实"},
    "refer_to_branch": {"note": "涉及维修资金"},
    "close_invalid": {"reason": "withdrawn", "note": "居民已自行解决"},
    "branch_approve": {"note": "同意"},
    "branch_decline": {"reply": "不符合使用条件"},
    "firm_accept": {},
    "firm_return": {"reason": "not_our_service", "note": "属供电公司"},
    "firm_complete": {"result": "已更换"},
    "hold": {"reason": "waiting_parts", "note": "等待配件"},
    "resume": {},
    "signoff": {"contacted": True, "resolved": True, "satisfaction": "satisfied"},
    "reopen": {"reason": "居民反映仍未解决"},
    "route": {},
    "auto_close": {},
}
ALL_TRIGGERS = sorted(d.TRIGGERS)


def _setup_for(transition: d.Transition):
    """Inputs and context under which ``transition`` (and not a sibling) is the one taken."""
    inputs = dict(VALID[transition.trigger])
    context = {"reopen_count": 0, "resolved_on_site": False, "branch_approved": False, "closed_at": None, "now": NOW}
    for condition in transition.conditions:
        if condition == "signoff_rejected":
            inputs.update(resolved=False, satisfaction="unsatisfied")
        elif condition == "reopen_limit_reached":
            context["reopen_count"] = d.MAX_REOPENS_BY_SIGNOFF
        elif condition == "resolved_on_site":
            context["resolved_on_site"] = True
        elif condition == "branch_has_approved":
            context["branch_approved"] = True
        elif condition == "within_reopen_window":
            context["closed_at"] = NOW - timedelta(days=3)
    return inputs, context


def _cases():
    for workflow in d.WORKFLOWS.values():
        for transition in workflow.transitions:
            yield pytest.param(
                workflow.name,
                transition,
                id=f"{workflow.name}:{transition.source}-{transition.trigger}->{transition.dest}",
            )


@pytest.mark.parametrize(("workflow", "transition"), list(_cases()))
def test_every_transition_works_for_every_allowed_role(workflow, transition):
    engine = get_engine(workflow)
    inputs, context = _setup_for(transition)
    spec = d.TRIGGERS[transition.trigger]
    for role in spec.roles:
        outcome = engine.fire(transition.source, transition.trigger, role, inputs, context)
        assert (outcome.source, outcome.dest) == (transition.source, transition.dest)
        if transition.dest == "closed":
            assert outcome.resolution in d.CLOSING_RESOLUTIONS
        else:
            assert outcome.resolution is None


@pytest.mark.parametrize(("workflow", "transition"), list(_cases()))
def test_every_other_role_is_refused_naming_who_may(workflow, transition):
    engine = get_engine(workflow)
    inputs, context = _setup_for(transition)
    spec = d.TRIGGERS[transition.trigger]
    for role in set(ROLES) - spec.roles:
        with pytest.raises(RoleNotAllowed) as refused:
            engine.fire(transition.source, transition.trigger, role, inputs, context)
        assert set(refused.value.roles) == spec.roles
        assert transition.trigger not in refused.value.allowed


@pytest.mark.parametrize("workflow", sorted(d.WORKFLOWS))
def test_every_trigger_not_leaving_a_state_is_refused_for_every_role(workflow):
    engine = get_engine(workflow)
    checked = 0
    for state in d.STATES:
        leaving = set(d.WORKFLOWS[workflow].triggers_from(state))
        for trigger in set(ALL_TRIGGERS) - leaving:
            for role in ROLES:
                with pytest.raises(TriggerNotAllowed) as refused:
                    engine.fire(state, trigger, role, VALID[trigger], {"now": NOW})
                assert refused.value.state == state
                assert set(refused.value.allowed) <= leaving
                checked += 1
    assert checked > 500  # the table really is exhaustive


def test_closed_is_the_only_terminal_state_and_reachable_in_every_workflow():
    assert [s.name for s in d.STATES.values() if s.terminal] == ["closed"]
    for workflow in d.WORKFLOWS.values():
        reached, frontier = {"registered"}, ["registered"]
        while frontier:
            state = frontier.pop()
            for t in workflow.transitions:
                if t.source == state and t.dest not in reached:
                    reached.add(t.dest)
                    frontier.append(t.dest)
        assert reached == set(d.STATES), workflow.name


def test_on_site_resolution_only_in_the_onsite_workflow():
    assert "resolve_on_site" in get_engine("onsite").possible("grid_handling", d.GRID_WORKER)
    assert "resolve_on_site" not in get_engine("standard").possible("grid_handling", d.GRID_WORKER)
    assert "resolve_on_site" not in get_engine("predeliberation").possible("grid_handling", d.GRID_WORKER)


def test_predeliberation_needs_the_branch_before_the_firm():
    engine = get_engine("predeliberation")
    assert engine.possible("grid_handling", d.GRID_WORKER, {"branch_approved": False}) == [
        "close_invalid",
        "refer_to_branch",
    ]
    with pytest.raises(ConditionFailed) as refused:
        engine.fire("grid_handling", "dispatch_to_firm", d.GRID_WORKER, {}, {"branch_approved": False})
    assert refused.value.rule == "branch_has_approved"
    # once the branch approved, a case the firm returned may go back to the firm
    outcome = engine.fire("grid_handling", "dispatch_to_firm", d.GRID_WORKER, {}, {"branch_approved": True})
    assert outcome.dest == "firm_dispatched"


@pytest.mark.parametrize(
    ("answers", "context", "dest", "resolution"),
    [
        ({"resolved": True, "satisfaction": "satisfied"}, {}, "closed", d.RESOLVED_SATISFIED),
        ({"resolved": True, "satisfaction": "basic"}, {}, "closed", d.RESOLVED_BASIC),
        ({"resolved": True, "satisfaction": "unsatisfied"}, {}, "firm_processing", None),
        ({"resolved": False, "satisfaction": "satisfied"}, {}, "firm_processing", None),
        ({"resolved": False, "satisfaction": "basic"}, {"resolved_on_site": True}, "grid_handling", None),
        (
            {"resolved": False, "satisfaction": "unsatisfied"},
            {"reopen_count": 2},
            "closed",
            d.RESOLVED_UNSATISFIED_FINAL,
        ),
    ],
)
def test_signoff_outcomes(answers, context, dest, resolution):
    outcome = get_engine("onsite").fire(
        "awaiting_signoff", "signoff", d.RESIDENT, {"contacted": "yes", **answers}, context
    )
    assert (outcome.dest, outcome.resolution) == (dest, resolution)
    assert outcome.inputs["contacted"] is True


@pytest.mark.parametrize(
    ("reason", "resolution"),
    [("duplicate", d.DUPLICATE), ("out_of_jurisdiction", d.INVALID), ("withdrawn", d.WITHDRAWN)],
)
def test_invalid_closing_records_the_reason(reason, resolution):
    inputs = {"reason": reason, "note": "说明", "duplicate_of": "KSM-20261125-0001"}
    outcome = get_engine("standard").fire("grid_handling", "close_invalid", d.GRID_WORKER, inputs)
    assert outcome.resolution == resolution


def test_reopen_only_within_thirty_days():
    engine = get_engine("standard")
    late = {"closed_at": NOW - timedelta(days=31), "now": NOW}
    assert engine.possible("closed", d.SUPERVISOR, late) == []
    with pytest.raises(ConditionFailed):
        engine.fire("closed", "reopen", d.SUPERVISOR, {"reason": "x"}, late)
    on_time = {"closed_at": NOW - timedelta(days=29), "now": NOW}
    assert engine.fire("closed", "reopen", d.SUPERVISOR, {"reason": "x"}, on_time).dest == "grid_handling"


@pytest.mark.parametrize("trigger", [t for t in ALL_TRIGGERS if any(i.required for i in d.TRIGGERS[t].inputs)])
def test_missing_required_inputs_are_refused_by_name(trigger):
    spec = d.TRIGGERS[trigger]
    required = {i.name for i in spec.inputs if i.required}
    with pytest.raises(InputInvalid) as refused:
        clean_inputs(spec, {})
    assert set(refused.value.errors) == required
    assert set(refused.value.errors.values()) == {"required"}
    # blank text counts as missing
    with pytest.raises(InputInvalid):
        clean_inputs(spec, {name: "   " for name in required})


def test_input_kinds_are_checked():
    signoff = d.TRIGGERS["signoff"]
    with pytest.raises(InputInvalid) as refused:
        clean_inputs(signoff, {"contacted": "maybe", "resolved": "1", "satisfaction": "delighted"})
    assert refused.value.errors == {"contacted": "invalid_bool", "satisfaction": "invalid_choice"}
    close = d.TRIGGERS["close_invalid"]
    with pytest.raises(InputInvalid) as refused:
        clean_inputs(close, {"reason": "duplicate", "note": "重复"})
    assert refused.value.errors == {"duplicate_of": "required"}
    assert clean_inputs(close, {"reason": "withdrawn", "note": "撤回"}) == {"reason": "withdrawn", "note": "撤回"}
    with pytest.raises(InputInvalid) as refused:
        clean_inputs(d.TRIGGERS["firm_complete"], {"result": "x" * 2001})
    assert refused.value.errors == {"result": "too_long"}


def test_unknown_trigger():
    with pytest.raises(UnknownTrigger):
        get_engine("standard").fire("grid_handling", "teleport", d.GRID_WORKER)


def test_one_shared_machine_per_workflow_with_no_models_and_no_auto_transitions():
    engine = get_engine("standard")
    assert engine is get_engine("standard")
    before = len(engine.machine.models)
    for _ in range(100):
        engine.fire("grid_assigned", "grid_accept", d.GRID_WORKER)
    assert len(engine.machine.models) == before == 0
    assert not any(name.startswith("to_") for name in engine.machine.events)


def test_workflows_package_imports_no_flask_or_sqlalchemy():
    import subprocess
    import sys

    code = (
        "import sys, workflows, workflows.engine, workflows.diagram; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('flask', 'sqlalchemy', 'flask_sqlalchemy')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_diagram_marks_the_current_state_and_the_actions_possible_now():
    from workflows.diagram import render_svg

    svg = render_svg(
        d.WORKFLOWS["onsite"],
        "zh",
        current="grid_handling",
        visited={"registered"},
        possible={"resolve_on_site", "dispatch_to_firm"},
    )
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert 'class="wf-node wf-current" data-state="grid_handling" aria-current="step"' in svg
    assert 'class="wf-node wf-visited" data-state="registered"' in svg
    assert svg.count("wf-current") == 1
    assert "现场办结" in svg and "网格员处置中" in svg
    assert 'wf-edge wf-edge-now" data-triggers="resolve_on_site"' in svg
    assert "http://" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")
    # the standard workflow has no on-site resolution edge
    assert "resolve_on_site" not in render_svg(d.WORKFLOWS["standard"], "en")
