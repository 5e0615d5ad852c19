"""Administration screens for time limits, business hours, holiday overrides and confirmed years."""

from __future__ import annotations

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms.validators import DataRequired, Length, NumberRange, ValidationError

from app.admin import SecureModelView
from app.cases.labels import state_label
from app.extensions import db
from app.sla.calendar import CALENDAR_MINUTES, WORKING_DAYS, WORKING_MINUTES, CalendarError, Limit, parse_periods
from app.sla.models import BusinessHours, CalendarYear, HolidayOverride, TimeLimitPolicy

CALENDAR = _l("Time limits")
UNIT_LABELS = {
    WORKING_DAYS: _l("working days"),
    WORKING_MINUTES: _l("working minutes"),
    CALENDAR_MINUTES: _l("calendar minutes"),
}


def limit_text(amount: int, unit: str) -> str:
    """A time limit as people say it: working days, working hours (or minutes), or calendar time."""
    if unit == WORKING_DAYS:
        return _("%(n)d working days", n=amount)
    if unit == WORKING_MINUTES:
        if amount % 30 == 0:
            return _("%(n)s working hours", n=f"{amount / 60:g}")
        return _("%(n)d working minutes", n=amount)
    if amount % 1440 == 0:
        return _("%(n)d days (calendar)", n=amount // 1440)
    if amount % 30 == 0:
        return _("%(n)s hours (calendar)", n=f"{amount / 60:g}")
    return _("%(n)d minutes (calendar)", n=amount)


class RetimesCases:
    """Screens whose changes move working time: open cases are re-timed in the same transaction."""

    retime_reason = _l("The working calendar was changed.")

    def _snapshot(self):
        from flask import g

        from app.sla.retime import snapshot_calendar

        g.ksm_calendar_before = snapshot_calendar()

    def create_model(self, form):
        self._snapshot()
        return super().create_model(form)

    def update_model(self, form, model):
        self._snapshot()
        return super().update_model(form, model)

    def delete_model(self, model):
        self._snapshot()
        return super().delete_model(model)

    def retime(self):
        from flask import g

        from app.sla.retime import retime_after_change

        before = g.pop("ksm_calendar_before", None)
        if before is not None:
            retime_after_change(before, str(self.retime_reason), actor=current_user)


class PolicyView(SecureModelView):
    can_create = False
    can_delete = False
    can_export = False
    column_list = ("state", "urgency", "amount", "unit", "readable", "updated_at")
    column_labels = {
        "state": _l("Step"),
        "urgency": _l("Urgency"),
        "amount": _l("Amount"),
        "unit": _l("Unit"),
        "readable": _l("Limit"),
        "updated_at": _l("Updated"),
    }
    column_formatters = {
        "state": lambda v, c, m, p: _("Whole case") if m.state == "case" else state_label(m.state),
        "unit": lambda v, c, m, p: UNIT_LABELS.get(m.unit, m.unit),
        "readable": lambda v, c, m, p: limit_text(m.amount, m.unit),
    }
    column_default_sort = "id"
    #: the limits as a step × urgency grid above the list
    list_template = "admin/time_limits.html"

    def limit_grid(self) -> tuple[list, list]:
        """``(urgencies, rows)``: each row is a step's label and, per urgency, its policy row (or None)."""
        from sqlalchemy import select

        from app.cases.labels import URGENCY_LABELS

        policies = db.session.scalars(select(TimeLimitPolicy).order_by(TimeLimitPolicy.id)).all()
        urgencies = [(code, str(label)) for code, label in URGENCY_LABELS.items()]
        urgencies += [(p.urgency, p.urgency) for p in policies if p.urgency not in URGENCY_LABELS]
        steps: dict[str, dict] = {}
        for policy in policies:
            steps.setdefault(policy.state, {})[policy.urgency] = policy
        ordered = [s for s in steps if s != "case"] + (["case"] if "case" in steps else [])
        rows = [
            (_("Whole case") if state == "case" else state_label(state), [steps[state].get(u) for u, _l in urgencies])
            for state in ordered
        ]
        return list(dict(urgencies).items()), rows

    def limit_text(self, policy) -> str:
        return limit_text(policy.amount, policy.unit)

    form_columns = ("amount", "unit")
    form_choices = {"unit": list(UNIT_LABELS.items())}
    form_args = {
        "amount": {
            "validators": [DataRequired(), NumberRange(min=1, max=100000)],
            "description": _l("Working days, or minutes (2 working hours = 120 working minutes)."),
        }
    }

    def on_model_change(self, form, model, is_created):
        try:
            Limit(model.amount, model.unit)
        except CalendarError as error:
            raise ValidationError(str(error)) from None
        from app.core.timeutil import utcnow

        model.updated_at = utcnow()


class BusinessHoursView(RetimesCases, SecureModelView):
    retime_reason = _l("The business hours were changed.")

    can_create = False
    can_delete = False
    can_export = False
    column_list = ("periods", "updated_at")
    column_labels = {"periods": _l("Business hours"), "updated_at": _l("Updated")}
    form_columns = ("periods",)
    form_args = {
        "periods": {
            "validators": [DataRequired()],
            "description": _l("Periods of a working day, e.g. 08:30-12:00, 14:00-17:30"),
        }
    }

    def on_model_change(self, form, model, is_created):
        from app.core.timeutil import utcnow
        from app.sla.calendar import format_periods

        try:
            model.periods = format_periods(parse_periods(model.periods))
        except CalendarError as error:
            raise ValidationError(str(error)) from None
        model.updated_at = utcnow()
        self.retime()


class OverrideView(RetimesCases, SecureModelView):
    retime_reason = _l("A holiday override was added, changed or deleted.")

    column_list = ("day", "is_working", "note", "created_at")
    column_labels = {
        "day": _l("Date"),
        "is_working": _l("Working day"),
        "note": _l("Note"),
        "created_at": _l("Created"),
    }
    column_default_sort = ("day", True)
    column_filters = ("day", "is_working")
    form_columns = ("day", "is_working", "note")
    form_args = {
        "day": {"validators": [DataRequired()]},
        "note": {
            "validators": [DataRequired(), Length(max=200)],
            "description": _l("e.g. 2027 National Day holiday (State Council notice)"),
        },
        "is_working": {"description": _l("Ticked: an extra working day (调休). Not ticked: a holiday.")},
    }

    def on_model_change(self, form, model, is_created):
        if is_created:
            model.created_by_id = current_user.id
        self.retime()

    def on_model_delete(self, model):
        from dataclasses import replace

        from flask import g

        from app.sla.retime import retime_open_cases

        before = g.pop("ksm_calendar_before", None)
        if before is None:
            return
        overrides = {day: working for day, working in before.overrides.items() if day != model.day}
        after = replace(before, overrides=overrides, missing_years=set())
        if before.is_working_day(model.day) != after.is_working_day(model.day):
            retime_open_cases(before, after, str(self.retime_reason), days=(model.day, model.day), actor=current_user)


class YearView(RetimesCases, SecureModelView):
    retime_reason = _l("A year's holiday schedule was confirmed.")

    can_edit = False
    column_list = ("year", "note", "confirmed_at")
    column_labels = {"year": _l("Year"), "note": _l("Note"), "confirmed_at": _l("Confirmed")}
    form_columns = ("year", "note")
    form_args = {
        "year": {
            "validators": [DataRequired(), NumberRange(min=2000, max=2100)],
            "description": _l(
                "Confirm only after entering the year's official holidays and make-up working days as overrides."
            ),
        }
    }

    def on_model_change(self, form, model, is_created):
        from app.sla.calendar import WorkCalendar

        if WorkCalendar().year_published(model.year):
            raise ValidationError(
                _("The schedule for %(year)d is already published in the calendar package.", year=model.year)
            )
        model.confirmed_by_id = current_user.id
        self.retime()


def register(admin) -> None:
    admin.add_view(PolicyView(TimeLimitPolicy, db, name=_l("Time limits"), category=CALENDAR))
    admin.add_view(BusinessHoursView(BusinessHours, db, name=_l("Business hours"), category=CALENDAR))
    admin.add_view(OverrideView(HolidayOverride, db, name=_l("Holiday overrides"), category=CALENDAR))
    admin.add_view(YearView(CalendarYear, db, name=_l("Confirmed years"), category=CALENDAR))
