"""The case lifecycle (DESIGN §3) as data: states, triggers, who may fire them, what they need.

Three workflows share one state vocabulary and one trigger vocabulary; they differ in which
transitions exist:

- ``standard``: grid worker → property firm → resident;
- ``onsite``: the grid worker may also resolve directly (``resolve_on_site``);
- ``predeliberation``: the party branch must approve (``branch_review``) before the firm is dispatched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Roles, as stored on users. ``resident`` and ``system`` are actors without an account.
CLERK = "clerk"
GRID_WORKER = "grid_worker"
PROPERTY_MANAGER = "property_manager"
BRANCH_SECRETARY = "branch_secretary"
SUPERVISOR = "supervisor"
ADMIN = "admin"
RESIDENT = "resident"
SYSTEM = "system"

# Closing resolutions (DESIGN §3).
RESOLVED_SATISFIED = "resolved_satisfied"
RESOLVED_BASIC = "resolved_basic"
RESOLVED_UNSATISFIED_FINAL = "resolved_unsatisfied_final"
AUTO_CLOSED = "auto_closed_no_response"
INVALID = "invalid"
DUPLICATE = "duplicate"
DECLINED_BY_BRANCH = "declined_by_branch"
WITHDRAWN = "withdrawn"

CLOSING_RESOLUTIONS = {
    RESOLVED_SATISFIED: {"zh": "已解决（满意）", "en": "Resolved, satisfied"},
    RESOLVED_BASIC: {"zh": "已解决（基本满意）", "en": "Resolved, basically satisfied"},
    RESOLVED_UNSATISFIED_FINAL: {"zh": "已办结（居民仍不满意）", "en": "Closed, resident still unsatisfied"},
    AUTO_CLOSED: {"zh": "超期未回访自动办结", "en": "Auto-closed, no answer from the resident"},
    INVALID: {"zh": "无效（不属本辖区）", "en": "Invalid (outside jurisdiction)"},
    DUPLICATE: {"zh": "重复诉求", "en": "Duplicate"},
    DECLINED_BY_BRANCH: {"zh": "支部先议未通过", "en": "Declined by the party branch"},
    WITHDRAWN: {"zh": "居民撤回", "en": "Withdrawn by the resident"},
}

#: How many times a resident may send a case back before an unsatisfied sign-off closes it for good.
MAX_REOPENS_BY_SIGNOFF = 2
#: A closed case may be reopened by a supervisor within this many days.
REOPEN_WINDOW_DAYS = 30


@dataclass(frozen=True)
class State:
    name: str
    zh: str
    en: str
    actor: str  # whose turn it is (a role, "resident" or "system")
    #: position on the workflow diagram (column, row)
    pos: tuple[float, float] = (0, 0)
    terminal: bool = False
    clock_runs: bool = True  # False: time here does not count against limits

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh


@dataclass(frozen=True)
class Input:
    """One input a trigger takes. ``kind``: text, choice, bool, case_ref, datetime."""

    name: str
    kind: str
    zh: str
    en: str
    required: bool = True
    choices: tuple[tuple[str, str, str], ...] = ()  # (value, zh, en)
    max_length: int = 2000
    #: required only when another input has a given value, e.g. ("reason", "duplicate")
    required_if: tuple[str, str] | None = None

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def choice_label(self, value: str, lang: str) -> str:
        for code, zh, en in self.choices:
            if code == value:
                return en if lang == "en" else zh
        return value


@dataclass(frozen=True)
class Trigger:
    """An action on a case, shared by every transition it can take."""

    name: str
    zh: str
    en: str
    roles: frozenset[str]
    inputs: tuple[Input, ...] = ()
    #: photos may be attached to this action
    accepts_photos: bool = False
    #: style hint for buttons: primary, secondary, danger
    tone: str = "primary"

    @property
    def system_only(self) -> bool:
        return self.roles == frozenset({SYSTEM})

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def input(self, name: str) -> Input | None:
        return next((i for i in self.inputs if i.name == name), None)


@dataclass(frozen=True)
class Transition:
    trigger: str
    source: str
    dest: str
    #: names of rules in :mod:`workflows.rules` that must all hold
    conditions: tuple[str, ...] = ()
    #: fixed resolution when this closes the case, or the name of a resolution rule
    resolution: str | None = None


@dataclass(frozen=True)
class Workflow:
    name: str
    zh: str
    en: str
    transitions: tuple[Transition, ...] = field(default_factory=tuple)

    def label(self, lang: str) -> str:
        return self.en if lang == "en" else self.zh

    def triggers_from(self, state: str) -> list[str]:
        seen: list[str] = []
        for transition in self.transitions:
            if transition.source == state and transition.trigger not in seen:
                seen.append(transition.trigger)
        return seen


# ---------------------------------------------------------------------------------------------- states

STATES: dict[str, State] = {
    s.name: s
    for s in (
        State("registered", "已登记", "Registered", SYSTEM, pos=(0, 0)),
        State("grid_assigned", "待网格员签收", "Awaiting grid worker", GRID_WORKER, pos=(1, 0)),
        State("grid_handling", "网格员处置中", "Grid worker handling", GRID_WORKER, pos=(2, 0)),
        State("branch_review", "支部先议中", "Party-branch review", BRANCH_SECRETARY, pos=(3, 0)),
        State("firm_dispatched", "待物业接单", "Awaiting property firm", PROPERTY_MANAGER, pos=(4, 0)),
        State("firm_processing", "物业处理中", "Property firm handling", PROPERTY_MANAGER, pos=(5, 0)),
        State(
            "on_hold", "挂起（计时暂停）", "On hold (clock stopped)", PROPERTY_MANAGER, pos=(5.6, 1), clock_runs=False
        ),
        State("awaiting_signoff", "待居民确认", "Awaiting resident sign-off", RESIDENT, pos=(4, 2)),
        State("closed", "已办结", "Closed", SUPERVISOR, pos=(1.5, 2), terminal=True, clock_runs=False),
    )
}
OPEN_STATES = tuple(name for name, state in STATES.items() if not state.terminal)

# ---------------------------------------------------------------------------------------------- inputs

NOTE_OPTIONAL = Input("note", "text", "说明", "Note", required=False)
SATISFACTION_CHOICES = (
    ("satisfied", "满意", "Satisfied"),
    ("basic", "基本满意", "Basically satisfied"),
    ("unsatisfied", "不满意", "Unsatisfied"),
)

TRIGGERS: dict[str, Trigger] = {
    t.name: t
    for t in (
        Trigger("route", "自动派发", "Route", frozenset({SYSTEM})),
        Trigger("grid_accept", "签收", "Accept", frozenset({GRID_WORKER}), (NOTE_OPTIONAL,)),
        Trigger(
            "resolve_on_site",
            "现场办结",
            "Resolve on site",
            frozenset({GRID_WORKER}),
            (Input("result", "text", "处置结果", "What was done"),),
            accepts_photos=True,
        ),
        Trigger(
            "dispatch_to_firm",
            "派单给物业",
            "Dispatch to property firm",
            frozenset({GRID_WORKER}),
            (Input("note", "text", "派单说明（核实情况）", "Dispatch note (what was verified)", required=False),),
        ),
        Trigger(
            "refer_to_branch",
            "提交支部先议",
            "Refer to party branch",
            frozenset({GRID_WORKER}),
            (Input("note", "text", "提请先议的事项说明", "What the branch should deliberate"),),
        ),
        Trigger(
            "close_invalid",
            "作无效办结",
            "Close as invalid",
            frozenset({GRID_WORKER}),
            (
                Input(
                    "reason",
                    "choice",
                    "原因",
                    "Reason",
                    choices=(
                        ("duplicate", "重复诉求", "Duplicate"),
                        ("out_of_jurisdiction", "不属本辖区", "Out of jurisdiction"),
                        ("withdrawn", "居民撤回", "Withdrawn by the resident"),
                    ),
                ),
                Input("note", "text", "说明", "Explanation"),
                Input(
                    "duplicate_of",
                    "case_ref",
                    "重复的诉求编号",
                    "Reference of the original case",
                    required=False,
                    required_if=("reason", "duplicate"),
                    max_length=40,
                ),
            ),
            tone="danger",
        ),
        Trigger(
            "branch_approve",
            "先议通过",
            "Approve",
            frozenset({BRANCH_SECRETARY}),
            (Input("note", "text", "先议意见", "Branch opinion"),),
        ),
        Trigger(
            "branch_decline",
            "先议不通过",
            "Decline",
            frozenset({BRANCH_SECRETARY}),
            (Input("reply", "text", "书面答复", "Written reply to the resident"),),
            tone="danger",
        ),
        Trigger("firm_accept", "接单", "Accept work order", frozenset({PROPERTY_MANAGER}), (NOTE_OPTIONAL,)),
        Trigger(
            "firm_return",
            "退单",
            "Return to grid worker",
            frozenset({PROPERTY_MANAGER}),
            (
                Input(
                    "reason",
                    "choice",
                    "退单原因",
                    "Reason for returning",
                    choices=(
                        ("not_our_service", "不属物业服务范围", "Not within the firm's service"),
                        ("wrong_location", "地址或小区有误", "Wrong address or compound"),
                        ("owner_responsibility", "属业主自行处理事项", "The owner's own responsibility"),
                        ("public_utility", "属水电气等公共事业单位", "A public utility's responsibility"),
                        ("other", "其他", "Other"),
                    ),
                ),
                Input("note", "text", "退单说明", "Explanation"),
            ),
            tone="danger",
        ),
        Trigger(
            "firm_complete",
            "处理完成",
            "Report completion",
            frozenset({PROPERTY_MANAGER}),
            (Input("result", "text", "处理结果", "What was done"),),
            accepts_photos=True,
        ),
        Trigger(
            "hold",
            "挂起",
            "Put on hold",
            frozenset({PROPERTY_MANAGER}),
            (
                Input(
                    "reason",
                    "choice",
                    "挂起原因",
                    "Reason",
                    choices=(
                        ("waiting_parts", "等待配件", "Waiting for parts"),
                        ("waiting_utility", "等待水电气等单位", "Waiting for a utility"),
                        ("owner_unavailable", "业主无法配合", "Owner not available"),
                        ("weather", "天气原因", "Weather"),
                        ("other", "其他", "Other"),
                    ),
                ),
                Input("note", "text", "说明", "Explanation"),
            ),
            tone="secondary",
        ),
        Trigger("resume", "恢复处理", "Resume", frozenset({PROPERTY_MANAGER}), (NOTE_OPTIONAL,)),
        Trigger(
            "signoff",
            "居民确认（回访）",
            "Resident sign-off",
            frozenset({RESIDENT, CLERK, GRID_WORKER}),
            (
                Input("contacted", "bool", "是否与您联系", "Were you contacted"),
                Input("resolved", "bool", "问题是否解决", "Is it resolved"),
                Input("satisfaction", "choice", "满意度", "Satisfaction", choices=SATISFACTION_CHOICES),
                Input("comment", "text", "意见建议", "Comment", required=False, max_length=1000),
            ),
        ),
        Trigger("auto_close", "超期自动办结", "Auto-close", frozenset({SYSTEM})),
        Trigger(
            "reopen",
            "重新办理",
            "Reopen",
            frozenset({SUPERVISOR}),
            (Input("reason", "text", "重新办理原因", "Reason for reopening"),),
            tone="secondary",
        ),
    )
}

# ----------------------------------------------------------------------------------------- transitions

_COMMON = (
    Transition("route", "registered", "grid_assigned"),
    Transition("grid_accept", "grid_assigned", "grid_handling"),
    Transition("close_invalid", "grid_handling", "closed", resolution="invalid_reason"),
    Transition("refer_to_branch", "grid_handling", "branch_review"),
    Transition("branch_approve", "branch_review", "firm_dispatched"),
    Transition("branch_decline", "branch_review", "closed", resolution=DECLINED_BY_BRANCH),
    Transition("firm_accept", "firm_dispatched", "firm_processing"),
    Transition("firm_return", "firm_dispatched", "grid_handling"),
    Transition("firm_complete", "firm_processing", "awaiting_signoff"),
    Transition("hold", "firm_processing", "on_hold"),
    Transition("resume", "on_hold", "firm_processing"),
    # sign-off: the first transition whose conditions hold is taken
    Transition("signoff", "awaiting_signoff", "closed", ("signoff_accepted",), resolution="satisfaction"),
    Transition(
        "signoff",
        "awaiting_signoff",
        "closed",
        ("signoff_rejected", "reopen_limit_reached"),
        resolution=RESOLVED_UNSATISFIED_FINAL,
    ),
    Transition("signoff", "awaiting_signoff", "grid_handling", ("signoff_rejected", "resolved_on_site")),
    Transition("signoff", "awaiting_signoff", "firm_processing", ("signoff_rejected",)),
    Transition("auto_close", "awaiting_signoff", "closed", resolution=AUTO_CLOSED),
    Transition("reopen", "closed", "grid_handling", ("within_reopen_window",)),
)

STANDARD = Workflow(
    "standard",
    "标准流程（网格员→物业→居民）",
    "Standard (grid worker → firm → resident)",
    _COMMON + (Transition("dispatch_to_firm", "grid_handling", "firm_dispatched"),),
)
ONSITE = Workflow(
    "onsite",
    "现场处置（网格员可直接办结）",
    "On-site (grid worker may resolve directly)",
    _COMMON
    + (
        Transition("dispatch_to_firm", "grid_handling", "firm_dispatched"),
        Transition("resolve_on_site", "grid_handling", "awaiting_signoff"),
    ),
)
PREDELIBERATION = Workflow(
    "predeliberation",
    "先议事项（支部先议→物业）",
    "Pre-deliberation (party branch → firm)",
    # the firm is dispatched through the branch; once approved, a returned case may go back to the firm
    _COMMON + (Transition("dispatch_to_firm", "grid_handling", "firm_dispatched", ("branch_has_approved",)),),
)

WORKFLOWS: dict[str, Workflow] = {w.name: w for w in (STANDARD, ONSITE, PREDELIBERATION)}
WORKFLOW_LABELS = {w.name: {"zh": w.zh, "en": w.en} for w in WORKFLOWS.values()}
