"""Administration screen for the 12345 category mapping."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms.validators import DataRequired, Length, Optional

from app.admin import SecureModelView
from app.cases.admin import SETTINGS
from app.extensions import db
from app.hotline.models import HotlineCategoryMap


class CategoryMapView(SecureModelView):
    column_list = ("source", "category", "urgency", "note", "created_at")
    column_labels = {
        "source": _l("12345 category"),
        "category": _l("Our category"),
        "urgency": _l("Urgency"),
        "note": _l("Note"),
        "created_at": _l("Created"),
    }
    column_searchable_list = ("source",)
    column_default_sort = "source"
    form_columns = ("source", "category", "urgency", "note")
    form_choices = {"urgency": [("", _l("Category default")), ("normal", _l("Normal")), ("urgent", _l("Urgent"))]}
    form_args = {
        "source": {
            "validators": [DataRequired(), Length(max=200)],
            "description": _l(
                "A level name as the platform writes it (e.g. 电梯故障), or a path of levels joined by / "
                "(e.g. 城乡建设/物业管理/电梯故障). The most specific match wins."
            ),
        },
        "category": {"validators": [DataRequired()]},
        "urgency": {"validators": [Optional()]},
        "note": {"validators": [Optional(), Length(max=200)]},
    }

    def on_model_change(self, form, model, is_created):
        model.source = "/".join(part.strip() for part in model.source.split("/") if part.strip())
        model.urgency = model.urgency or None


def register(admin) -> None:
    admin.add_view(
        CategoryMapView(HotlineCategoryMap, db, name=_l("12345 categories"), endpoint="hotline_map", category=SETTINGS)
    )
