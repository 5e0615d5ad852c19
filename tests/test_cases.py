"""Case services: intake and routing, the event trail, refusals, sign-off, reopen, duplicates, scope."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from app.cases import services
from app.cases.models import Case, FollowUp
from app.core.errors import Conflict, NotFound, PermissionDenied, ValidationError
from app.core.timeutil import utcnow
from app.extensions import db
from app.org.models import Community, Compound
from tests.factories import PNG, load, make_case, user


def _events(case):
    return [(e.kind, e.trigger, e.from_state, e.to_state) for e in services.events_of(case)]


# ----------------------------------------------------------------------------------------------- intake


def test_clerk_registers_a_case_that_is_routed_to_the_grid_worker(ctx):
    clerk = user("clerk1")
    case = services.register_case(
        services.Intake(
            category="water_leak",
            description="3栋2单元楼道水管漏水",
            compound="X01",
            building="3栋",
            unit="2单元301",
            resident_name="陈先生",
            resident_phone="138 1234 5678",
        ),
        clerk,
    )
    assert case.ref.startswith("KSM-") and len(case.ref) == len("KSM-20261125-0001")
    assert case.state == "grid_assigned" and not case.needs_routing
    assert case.assigned_grid_worker.username == "grid1"
    assert case.grid.code == "G01" and case.firm.code == "F01" and case.branch.code == "B-X01"
    assert case.community.code == "C01" and case.street.code == "S01"
    assert case.station.code == "ST01" and case.created_by.username == "clerk1"
    assert case.resident_phone == "13812345678" and case.resident_phone_last4 == "5678"
    assert case.building.name == "3栋" and case.urgency == "normal"
    assert _events(case) == [("created", None, None, None), ("transition", "route", "registered", "grid_assigned")]
    route = services.events_of(case)[1]
    assert route.actor_role == "system" and route.actor_id is None


def test_reference_numbers_are_unique_and_sequential_per_day(ctx):
    refs = [make_case() for _ in range(3)]
    numbers = [int(ref.rsplit("-", 1)[1]) for ref in refs]
    assert len(set(refs)) == 3 and numbers == sorted(numbers) and numbers[2] - numbers[0] == 2


def test_urgency_defaults_from_the_category(ctx):
    assert load(make_case(category="lift_entrapment")).urgency == "urgent"
    assert load(make_case(category="lift_fault")).urgency == "normal"
    assert load(make_case(category="lift_fault", urgency="urgent")).urgency == "urgent"


def test_intake_errors_name_every_field_and_write_nothing(ctx):
    before = db.session.scalar(select(func.count()).select_from(Case))
    with pytest.raises(services.FieldErrors) as refused:
        services.register_case(
            services.Intake(category="nope", description="漏", compound="X99", resident_phone="12345"), user("clerk1")
        )
    errors = refused.value.errors
    assert set(errors) >= {"category", "description", "compound", "resident_phone", "resident_name"}
    assert db.session.scalar(select(func.count()).select_from(Case)) == before


def test_building_must_belong_to_the_compound(ctx):
    with pytest.raises(services.FieldErrors) as refused:
        services.register_case(
            services.Intake(
                category="water_leak",
                description="楼道漏水严重",
                compound="X01",
                building="99栋",
                resident_name="陈",
                resident_phone="13812345678",
            ),
            user("clerk1"),
        )
    assert "building" in refused.value.errors


def test_inactive_category_is_refused(ctx):
    from app.cases.models import Category

    db.session.scalar(select(Category).where(Category.code == "pets")).active = False
    with pytest.raises(services.FieldErrors) as refused:
        make_case(category="pets")
    assert "category" in refused.value.errors


def test_routing_fallback_when_the_compound_has_no_grid_worker(ctx):
    community = db.session.scalar(select(Community).where(Community.code == "C02"))
    lonely = Compound(code="X99", name="新建未分网格小区", community_id=community.id)
    db.session.add(lonely)
    db.session.flush()
    case = services.register_case(
        services.Intake(
            category="garbage",
            description="垃圾三天没有清运",
            compound="X99",
            resident_name="王",
            resident_phone="13900000000",
        ),
        user("clerk2"),
    )
    assert case.state == "registered" and case.needs_routing
    assert case.assigned_grid_worker_id is None and case.grid_id is None and case.firm_id is None
    assert _events(case) == [("created", None, None, None)]
    # a community supervisor assigns a grid worker: the case is routed at once
    event = services.reassign(case, user("supervisor2"), grid_worker="grid3", note="临时由第一网格负责")
    assert event.payload["grid_worker"][1] == user("grid3").id
    assert case.state == "grid_assigned" and not case.needs_routing and case.grid.code == "G03"
    assert _events(case)[-2:] == [
        ("reassign", None, None, None),
        ("transition", "route", "registered", "grid_assigned"),
    ]


def test_an_inactive_grid_worker_is_not_routed_to(ctx):
    user("grid2").active = False
    case = services.register_case(
        services.Intake(
            category="garbage",
            description="垃圾三天没有清运",
            compound="X03",
            resident_name="王",
            resident_phone="13900000000",
        ),
        user("clerk1"),
    )
    assert case.state == "registered" and case.needs_routing


def test_routing_prefers_the_least_loaded_grid_worker(ctx):
    from app.auth import roles
    from app.auth import services as auth_services

    auth_services.create_user("grid1b", "Passw0rd1", roles.GRID_WORKER, auth_services.resolve_scope("grid", "G01"))
    make_case()  # grid1 gets it (tie on load, lower id)
    second = load(make_case())
    assert second.assigned_grid_worker.username == "grid1b"


def test_open311_style_intake_without_compound_waits_for_routing(ctx):
    case = services.register_case(
        services.Intake(
            category="lighting", description="路灯不亮已经一周", channel="open311", address_text="秋浦西路88号附近"
        ),
        user("admin"),
    )
    assert case.state == "registered" and case.needs_routing and case.street.code == "S01"
    assert case.compound_id is None and case.resident_phone is None


def test_possible_duplicates_are_listed_at_intake(ctx):
    first = make_case(category="lift_fault", building="2栋")
    make_case(category="lift_fault", building="5栋")
    make_case(category="garbage", building="2栋")
    third = services.register_case(
        services.Intake(
            category="lift_fault",
            description="2栋电梯又坏了",
            compound="X01",
            building="2栋",
            resident_name="李",
            resident_phone="13700000000",
        ),
        user("clerk1"),
    )
    refs = third.possible_duplicates  # the references (same building first)
    assert refs[0] == first and len(refs) == 2
    assert services.events_of(third)[0].payload["possible_duplicates"] == refs
    # the same cases, as cases, for the pages that show them
    found = services.possible_duplicates(third.category_id, third.compound_id, third.building_id, exclude_id=third.id)
    assert [c.ref for c in found] == refs
    # older than 7 days or closed: not a hint
    assert services.possible_duplicates(third.category_id, third.compound_id, now=utcnow() + timedelta(days=8)) == []
    assert (
        services.possible_duplicate_refs(third.category_id, third.compound_id, now=utcnow() + timedelta(days=8)) == []
    )


@pytest.mark.postgres
def test_the_duplicates_read_with_the_allocation_are_those_the_pages_show(ctx):
    """On PostgreSQL an intake reads its possible duplicates in the statement that allocates its id: the same
    references, in the same order, as the stand-alone query — more candidates than are looked at, closed
    ones, other categories, with a building (same building first) and without."""
    base = utcnow()
    for n in range(18):  # more than the 15 newest looked at: the oldest fall out
        make_case(category="lift_fault", building=("2栋", "5栋", None)[n % 3], now=base - timedelta(minutes=60 - n))
    make_case("closed", category="lift_fault", building="2栋", now=base - timedelta(minutes=1))
    make_case(category="garbage", building="2栋", now=base - timedelta(minutes=1))
    for building in ("2栋", "5栋", None):
        intake = services.Intake(
            category="lift_fault",
            description="2栋电梯又坏了，困人",
            compound="X01",
            building=building,
            resident_name="李",
            resident_phone="13700000000",
        )
        case = services.register_case(intake, user("clerk1"), now=base)
        expected = services.possible_duplicate_refs(
            case.category_id, case.compound_id, case.building_id, base, exclude_id=case.id
        )
        assert len(expected) == services.DUPLICATES_SHOWN
        assert case.possible_duplicates == expected, building
        assert services.events_of(case)[0].payload["possible_duplicates"] == expected
        db.session.rollback()
    other_compound = services.register_case(
        services.Intake(
            category="lift_fault",
            description="电梯坏了，困人",
            compound="X02",
            resident_name="李",
            resident_phone="13700000000",
        ),
        user("clerk1"),
        now=base,
    )
    assert other_compound.possible_duplicates == []


# ----------------------------------------------------------------------------------------- lifecycle


def test_full_standard_lifecycle_leaves_a_complete_event_trail(ctx):
    case = load(make_case(category="water_leak"))
    grid, firm, clerk = user("grid1"), user("firm1"), user("clerk1")
    services.fire(case, "grid_accept", grid)
    services.fire(case, "dispatch_to_firm", grid, inputs={"note": "现场核实：楼上管道破裂"})
    services.fire(case, "firm_accept", firm)
    services.fire(case, "hold", firm, inputs={"reason": "waiting_parts", "note": "等待管件"})
    services.fire(case, "resume", firm)
    services.fire(
        case,
        "firm_complete",
        firm,
        inputs={"result": "已更换管道"},
        photos=[("after.png", PNG)],
    )
    services.fire(
        case,
        "signoff",
        clerk,
        inputs={"contacted": True, "resolved": True, "satisfaction": "basic", "comment": "维修及时"},
    )
    assert case.state == "closed" and case.resolution == "resolved_basic" and case.closed_at is not None
    assert _events(case) == [
        ("created", None, None, None),
        ("transition", "route", "registered", "grid_assigned"),
        ("transition", "grid_accept", "grid_assigned", "grid_handling"),
        ("transition", "dispatch_to_firm", "grid_handling", "firm_dispatched"),
        ("transition", "firm_accept", "firm_dispatched", "firm_processing"),
        ("transition", "hold", "firm_processing", "on_hold"),
        ("transition", "resume", "on_hold", "firm_processing"),
        ("transition", "firm_complete", "firm_processing", "awaiting_signoff"),
        ("transition", "signoff", "awaiting_signoff", "closed"),
    ]
    events = services.events_of(case)
    assert [e.actor_name for e in events[2:]] == [grid.display_name] * 2 + [firm.display_name] * 4 + [
        clerk.display_name
    ]
    assert events[3].note == "现场核实：楼上管道破裂" and events[3].payload["firm_id"] == case.firm_id
    assert events[5].payload["reason"] == "waiting_parts" and events[5].note == "等待管件"
    assert events[5].payload["on_time"] is True  # each step records whether it kept its time limit
    assert events[-1].payload["resolution"] == "resolved_basic" and events[-1].payload["satisfaction"] == "basic"
    assert all(e.created_at is not None for e in events)
    follow_up = db.session.scalar(select(FollowUp).where(FollowUp.case_id == case.id))
    assert (follow_up.contacted, follow_up.resolved, follow_up.satisfaction, follow_up.channel) == (
        True,
        True,
        "basic",
        "clerk",
    )
    assert follow_up.event_id == events[-1].id and follow_up.comment == "维修及时"
    from app.cases.models import Attachment

    photo = db.session.scalar(select(Attachment).where(Attachment.case_id == case.id))
    assert photo.event_id == events[7].id and photo.content_type == "image/png"


def test_unsatisfied_signoff_sends_the_case_back_and_counts_a_reopen(ctx):
    case = load(make_case("awaiting_signoff"))
    services.fire(
        case,
        "signoff",
        user("grid1"),
        inputs={"contacted": True, "resolved": False, "satisfaction": "unsatisfied", "comment": "还在漏"},
    )
    assert case.state == "firm_processing" and case.reopen_count == 1 and case.resolution is None
    services.fire(case, "firm_complete", user("firm1"), inputs={"result": "再次维修"})
    services.fire(
        case, "signoff", user("grid1"), inputs={"contacted": True, "resolved": True, "satisfaction": "unsatisfied"}
    )
    assert case.state == "firm_processing" and case.reopen_count == 2
    services.fire(case, "firm_complete", user("firm1"), inputs={"result": "第三次维修"})
    services.fire(
        case, "signoff", user("grid1"), inputs={"contacted": True, "resolved": False, "satisfaction": "unsatisfied"}
    )
    # after two send-backs an unsatisfied answer closes the case for good, and it is counted as such
    assert case.state == "closed" and case.resolution == "resolved_unsatisfied_final"
    assert db.session.scalar(select(func.count()).select_from(FollowUp).where(FollowUp.case_id == case.id)) == 3


def test_on_site_resolution_and_rejected_signoff_returns_to_the_grid_worker(ctx):
    case = load(make_case("grid_handling", category="noise"))
    assert case.workflow == "onsite"
    assert "resolve_on_site" in services.allowed_triggers(user("grid1"), case)
    services.fire(case, "resolve_on_site", user("grid1"), inputs={"result": "已劝导装修户"})
    assert case.state == "awaiting_signoff" and case.resolved_on_site
    services.resident_signoff(case.signoff_token, {"contacted": "1", "resolved": "0", "satisfaction": "unsatisfied"})
    assert case.state == "grid_handling" and case.reopen_count == 1
    last = services.events_of(case)[-1]
    assert last.actor_role == "resident" and last.actor_id is None


def test_predeliberation_path_through_the_party_branch(ctx):
    case = load(make_case("grid_handling", category="maintenance_fund"))
    grid = user("grid1")
    assert services.allowed_triggers(grid, case) == ["close_invalid", "refer_to_branch"]
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "dispatch_to_firm", grid)
    assert refused.value.http_status == 409 and "party branch" in refused.value.message
    services.fire(case, "refer_to_branch", grid, inputs={"note": "3栋外墙维修拟使用维修资金"})
    assert services.allowed_triggers(user("branch1"), case) == ["branch_approve", "branch_decline"]
    services.fire(case, "branch_approve", user("branch1"), inputs={"note": "经支委会先议同意"})
    assert case.state == "firm_dispatched" and case.branch_approved and case.firm_dispatched_at is not None
    services.fire(case, "firm_return", user("firm1"), inputs={"reason": "other", "note": "需补充业主表决材料"})
    assert services.allowed_triggers(grid, case) == ["close_invalid", "refer_to_branch", "dispatch_to_firm"]


def test_branch_decline_closes_with_a_written_reply(ctx):
    case = load(make_case("branch_review", category="ad_income"))
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "branch_decline", user("branch1"), inputs={})
    assert refused.value.code == "validation_error" and "reply" in refused.value.details["fields"]
    assert case.state == "branch_review"
    services.fire(case, "branch_decline", user("branch1"), inputs={"reply": "收益分配方案需经业主大会表决"})
    assert case.state == "closed" and case.resolution == "declined_by_branch"


def test_close_as_duplicate_links_the_original(ctx):
    original = make_case(category="lift_fault")
    duplicate = load(make_case("grid_handling", category="lift_fault"))
    with pytest.raises(ValidationError) as refused:
        services.fire(
            duplicate,
            "close_invalid",
            user("grid1"),
            inputs={"reason": "duplicate", "note": "同一部电梯", "duplicate_of": "KSM-19990101-0001"},
        )
    assert refused.value.field == "duplicate_of"
    db.session.rollback()
    duplicate = load(duplicate.ref)
    services.fire(
        duplicate,
        "close_invalid",
        user("grid1"),
        inputs={"reason": "duplicate", "note": "同一部电梯", "duplicate_of": original.lower()},
    )
    assert duplicate.state == "closed" and duplicate.resolution == "duplicate"
    assert duplicate.duplicate_of.ref == original
    assert services.events_of(duplicate)[-1].payload["duplicate_of"] == original


def test_supervisor_reopens_within_thirty_days_only(ctx):
    case = load(make_case("closed"))
    assert services.allowed_triggers(user("supervisor1"), case) == ["reopen"]
    services.fire(case, "reopen", user("supervisor1"), inputs={"reason": "居民再次反映"})
    assert case.state == "grid_handling" and case.closed_at is None and case.resolution is None
    assert case.reopen_count == 1
    old = load(make_case("closed"))
    later = old.closed_at + timedelta(days=31)
    assert services.allowed_triggers(user("supervisor1"), old, now=later) == []
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(old, "reopen", user("supervisor1"), inputs={"reason": "x"}, now=later)
    assert "30" in refused.value.message and refused.value.http_status == 409


def test_no_firm_under_contract_refuses_dispatch(ctx):
    from app.org.models import FirmContract

    case = load(make_case("grid_handling", compound="X02"))
    for contract in db.session.scalars(select(FirmContract).where(FirmContract.compound_id == case.compound_id)):
        db.session.delete(contract)
    case.firm_id = None
    db.session.flush()
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "dispatch_to_firm", user("grid1"))
    assert refused.value.code == "no_firm"


# ------------------------------------------------------------------------------------------- refusals


def test_wrong_state_is_refused_naming_the_state_and_the_allowed_actions(ctx):
    case = load(make_case("grid_assigned"))
    with pytest.raises(PermissionDenied):  # the firm cannot even see a case not dispatched to it
        services.fire(case, "firm_complete", user("firm1"), inputs={"result": "x"})
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "dispatch_to_firm", user("grid1"))
    error = refused.value
    assert error.http_status == 409 and error.code == "trigger_not_allowed"
    assert error.details["state"] == "grid_assigned" and error.details["allowed"] == ["grid_accept"]
    assert "Awaiting grid worker" in error.message and "Accept" in error.message
    assert case.state == "grid_assigned" and len(services.events_of(case)) == 2


def test_wrong_role_is_refused_with_403(ctx):
    case = load(make_case("grid_handling"))
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "dispatch_to_firm", user("supervisor1"))
    assert refused.value.http_status == 403 and refused.value.code == "role_not_allowed"
    assert refused.value.details["roles"] == ["grid_worker"]


def test_missing_required_input_changes_nothing(ctx):
    case = load(make_case("firm_dispatched"))
    version, count = case.version, len(services.events_of(case))
    with pytest.raises(services.WorkflowRefused) as refused:
        services.fire(case, "firm_return", user("firm1"), inputs={"note": "不归我们管"})
    error = refused.value
    assert error.http_status == 422 and set(error.details["fields"]) == {"reason"}
    # users read the options' labels, never the internal codes; API clients get the codes in details
    message = error.details["fields"]["reason"]
    assert "Not within the firm's service" in message and "not_our_service" not in message and "_" not in message
    assert "not_our_service" in error.details["choices"]["reason"]
    assert case.state == "firm_dispatched" and case.version == version
    assert len(services.events_of(case)) == count


@pytest.mark.parametrize(
    ("username", "trigger", "inputs"),
    [
        ("grid3", "grid_accept", {}),  # a grid worker of another grid
        ("firm2", "firm_accept", {}),  # a manager of another firm
        ("clerk2", "signoff", {"contacted": True, "resolved": True, "satisfaction": "satisfied"}),
    ],
)
def test_actors_outside_the_case_scope_are_refused(ctx, username, trigger, inputs):
    state = {"grid_accept": "grid_assigned", "firm_accept": "firm_dispatched", "signoff": "awaiting_signoff"}[trigger]
    case = load(make_case(state))
    with pytest.raises(PermissionDenied):
        services.fire(case, trigger, user(username), inputs=inputs)
    assert case.state == state
    assert services.allowed_triggers(user(username), case) == []


def test_firm_sees_a_case_only_once_dispatched_to_it(ctx):
    from app.auth.permissions import in_scope

    case = load(make_case("grid_handling"))
    assert case.firm.code == "F01" and not in_scope(user("firm1"), case)
    services.fire(case, "dispatch_to_firm", user("grid1"))
    assert in_scope(user("firm1"), case) and not in_scope(user("firm2"), case)
    visible = db.session.scalars(services.visible_cases(user("firm1"))).all()
    assert case in visible
    assert case not in db.session.scalars(services.visible_cases(user("firm2"))).all()


def test_visibility_by_role(ctx):
    case = load(make_case("grid_handling"))  # 阳光花园, 杏花村社区, 秋浦街道
    sees = {
        name: services.can_view(user(name), case)
        for name in (
            "clerk1",
            "clerk2",
            "grid1",
            "grid2",
            "firm1",
            "branch1",
            "supervisor1",
            "supervisor2",
            "street1",
            "admin",
        )
    }
    assert sees == {
        "clerk1": True,
        "clerk2": False,
        "grid1": True,
        "grid2": False,
        "firm1": False,
        "branch1": True,
        "supervisor1": True,
        "supervisor2": False,
        "street1": True,
        "admin": True,
    }
    with pytest.raises(NotFound):
        services.get_visible_case(user("grid2"), case.ref)
    assert services.get_visible_case(user("grid1"), case.ref.lower()) == case


def test_stale_version_is_a_conflict_naming_the_new_state(ctx):
    case = load(make_case("grid_assigned"))
    seen = case.version
    services.fire(case, "grid_accept", user("grid1"))
    with pytest.raises(Conflict) as refused:
        services.fire(case, "grid_accept", user("grid1"), expected_version=seen)
    assert refused.value.code == "version_conflict" and refused.value.details["state"] == "grid_handling"
    assert "Grid worker handling" in refused.value.message


def test_events_cannot_be_changed_or_deleted(ctx):
    case = load(make_case())
    event = services.events_of(case)[0]
    event.note = "tampered"
    with pytest.raises(RuntimeError, match="immutable"):
        db.session.flush()
    db.session.rollback()
    # below the ORM too: the database refuses
    with pytest.raises(Exception, match="immutable|never deleted"):
        with db.session.begin_nested():
            db.session.execute(text("UPDATE case_event SET note = 'x' WHERE id = :id"), {"id": event.id})
    with pytest.raises(Exception, match="immutable|never deleted"):
        with db.session.begin_nested():
            db.session.execute(text("DELETE FROM case_event WHERE id = :id"), {"id": event.id})


def test_notes_and_reassignment_are_events(ctx):
    case = load(make_case("grid_handling"))
    services.add_note(case, user("clerk1"), "居民来电催问进度")
    with pytest.raises(ValidationError):
        services.add_note(case, user("clerk1"), "   ")
    with pytest.raises(PermissionDenied):
        services.add_note(case, user("clerk2"), "越权")
    with pytest.raises(PermissionDenied):
        services.reassign(case, user("grid1"), grid_worker="grid2", note="x")
    services.reassign(case, user("supervisor1"), grid_worker="grid2", note="第一网格员休假")
    assert case.assigned_grid_worker.username == "grid2" and case.grid.code == "G02"
    kinds = [e.kind for e in services.events_of(case)]
    assert kinds[-2:] == ["note", "reassign"]
    # supervisors of another community cannot move it
    with pytest.raises(PermissionDenied):
        services.reassign(case, user("supervisor2"), grid_worker="grid3", note="x")


def test_firm_can_be_changed_only_before_it_accepts(ctx):
    case = load(make_case("firm_dispatched"))
    services.reassign(case, user("street1"), firm="F02", note="合同到期，由安居物业接管")
    assert case.firm.code == "F02"
    services.fire(case, "firm_accept", user("firm2"))
    with pytest.raises(Conflict):
        services.reassign(case, user("street1"), firm="F01", note="x")


def test_resident_lookup_by_reference_and_phone_digits(ctx):
    ref = make_case(resident_phone="13955556666")
    assert services.case_for_resident(ref, "6666").ref == ref
    with pytest.raises(NotFound):
        services.case_for_resident(ref, "1234")
    with pytest.raises(NotFound):
        services.case_for_resident("KSM-00000000-0000", "6666")
    with pytest.raises(NotFound):
        services.resident_signoff("not-a-token", {})


def test_resident_link_cannot_sign_off_twice(ctx):
    case = load(make_case("awaiting_signoff"))
    services.resident_signoff(case.signoff_token, {"contacted": "1", "resolved": "1", "satisfaction": "satisfied"})
    with pytest.raises(services.WorkflowRefused) as refused:
        services.resident_signoff(case.signoff_token, {"contacted": "1", "resolved": "1", "satisfaction": "satisfied"})
    assert refused.value.code in ("trigger_not_allowed", "role_not_allowed")
    assert case.resolution == "resolved_satisfied"


def test_photos_are_checked_by_content(ctx):
    case = load(make_case("firm_processing"))
    with pytest.raises(ValidationError, match="JPEG"):
        services.fire(
            case, "firm_complete", user("firm1"), inputs={"result": "已修"}, photos=[("evil.png", b"<?php echo 1; ?>")]
        )
    db.session.rollback()
    case = load(case.ref)
    assert case.state == "firm_processing"
    with pytest.raises(ValidationError, match="cannot be attached"):
        services.fire(
            case,
            "hold",
            user("firm1"),
            inputs={"reason": "weather", "note": "雨天"},
            photos=[("a.png", b"\x89PNG\r\n\x1a\n")],
        )


def test_files_of_a_failed_action_are_removed(ctx, app):
    import os

    case = load(make_case("firm_processing"))
    upload_dir = app.config["UPLOAD_DIR"]
    before = sum(len(files) for _r, _d, files in os.walk(upload_dir))
    with pytest.raises(ValidationError):
        services.fire(
            case,
            "firm_complete",
            user("firm1"),
            inputs={"result": "已修"},
            photos=[("ok.png", PNG), ("bad.txt", b"hello")],
        )
    db.session.rollback()
    after = sum(len(files) for _r, _d, files in os.walk(upload_dir))
    assert after == before
