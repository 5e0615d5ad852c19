"""Administration screens for categories (and, later, workflows)."""

from __future__ import annotations

from flask_admin import BaseView, expose
from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.admin import SecureMixin, SecureModelView, validate_code
from app.cases.models import Category
from app.core.i18n import lazy_pick, pick
from app.extensions import db
from workflows import WORKFLOW_LABELS

SETTINGS = _l("Settings")


class CategoryView(SecureModelView):
    can_delete = False  # cases refer to categories: deactivate instead
    column_list = ("code", "name_zh", "name_en", "default_urgency", "workflow", "active", "sort_order")
    column_labels = {
        "code": _l("Code"),
        "name_zh": _l("Chinese name"),
        "name_en": _l("English name"),
        "default_urgency": _l("Default urgency"),
        "workflow": _l("Workflow"),
        "active": _l("Active"),
        "sort_order": _l("Sort order"),
        "description": _l("Description"),
    }
    column_searchable_list = ("code", "name_zh", "name_en")
    column_filters = ("workflow", "default_urgency", "active")
    column_default_sort = "sort_order"
    column_editable_list = ("active", "sort_order")
    form_columns = ("code", "name_zh", "name_en", "default_urgency", "workflow", "active", "sort_order", "description")
    form_choices = {
        "default_urgency": [("normal", _l("Normal")), ("urgent", _l("Urgent"))],
        "workflow": [(key, lazy_pick(label)) for key, label in WORKFLOW_LABELS.items()],
    }
    form_args = {
        "code": {"validators": [DataRequired(), validate_code]},
        "name_zh": {"validators": [DataRequired(), Length(max=64)]},
        "name_en": {"validators": [DataRequired(), Length(max=64)]},
        "sort_order": {"validators": [Optional(), NumberRange(min=0, max=10000)]},
    }
    column_formatters = {
        "workflow": lambda v, c, m, p: (
            pick(WORKFLOW_LABELS[m.workflow]) if m.workflow in WORKFLOW_LABELS else m.workflow
        ),
    }


class WorkflowsView(SecureMixin, BaseView):
    """Every workflow drawn, with its transitions and who may fire each trigger."""

    @expose("/")
    def index(self):
        from app.cases import labels as L
        from app.core.i18n import is_english
        from workflows import TRIGGERS, WORKFLOWS
        from workflows.diagram import render_svg

        lang = "en" if is_english() else "zh"
        pictures = {name: render_svg(workflow, lang) for name, workflow in WORKFLOWS.items()}
        return self.render(
            "admin/workflows.html", workflows=WORKFLOWS, pictures=pictures, triggers=TRIGGERS, L=L, lang=lang
        )


def register(admin) -> None:
    admin.add_view(CategoryView(Category, db, name=_l("Categories"), category=SETTINGS))
    admin.add_view(WorkflowsView(name=_l("Workflows"), endpoint="workflows", category=SETTINGS))
