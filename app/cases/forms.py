"""Case forms. They check shape; :mod:`app.cases.services` decides the rest."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import BooleanField, HiddenField, SelectField, StringField, SubmitField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length, Optional, Regexp

from app.cases.labels import CHANNEL_LABELS, URGENCY_LABELS


class IntakeForm(FlaskForm):
    category = SelectField(_l("Category"), validators=[DataRequired(message=_l("Choose a category."))], coerce=str)
    compound = SelectField(_l("Compound"), validators=[DataRequired(message=_l("Choose the compound."))], coerce=str)
    building = SelectField(_l("Building"), validators=[Optional()], coerce=str, validate_choice=False)
    unit = StringField(_l("Unit / room"), validators=[Optional(), Length(max=50)])
    description = TextAreaField(
        _l("What is the matter?"),
        validators=[DataRequired(message=_l("Describe the matter.")), Length(min=5, max=4000)],
        render_kw={"rows": 4},
    )
    urgency = SelectField(
        _l("Urgency"),
        choices=[SelectChoice("", _l("As the category says"))]
        + [SelectChoice(key, label) for key, label in URGENCY_LABELS.items()],
        validators=[Optional()],
    )
    channel = SelectField(
        _l("Channel"),
        choices=[
            SelectChoice(key, label)
            for key, label in CHANNEL_LABELS.items()
            if key in ("window", "phone", "grid", "online")
        ],
    )
    resident_name = StringField(_l("Resident's name"), validators=[DataRequired(), Length(max=50)])
    resident_phone = StringField(
        _l("Resident's mobile"),
        validators=[
            DataRequired(),
            Regexp(
                r"^\s*1[3-9]\d[\s-]?\d{4}[\s-]?\d{4}\s*$",
                message=_l("A mobile number has 11 digits and starts with 1."),
            ),
        ],
        render_kw={"inputmode": "tel", "autocomplete": "off"},
    )
    confirm_new = BooleanField(_l("This is a new matter, not one of the cases above"))
    submit = SubmitField(_l("Register"))


class NoteForm(FlaskForm):
    note = TextAreaField(_l("Note"), validators=[DataRequired(), Length(max=2000)], render_kw={"rows": 2})
    submit = SubmitField(_l("Add note"))


class ReassignForm(FlaskForm):
    version = HiddenField()
    grid_worker = SelectField(_l("Grid worker"), validators=[Optional()], coerce=str, validate_choice=False)
    firm = SelectField(_l("Property firm"), validators=[Optional()], coerce=str, validate_choice=False)
    compound = SelectField(_l("Correct the compound"), validators=[Optional()], coerce=str, validate_choice=False)
    note = StringField(_l("Why"), validators=[DataRequired(), Length(max=500)])
    submit = SubmitField(_l("Reassign"))


class TrackForm(FlaskForm):
    ref = StringField(
        _l("Reference number"),
        validators=[DataRequired(), Length(max=24)],
        render_kw={"placeholder": "KSM-20261125-0001", "autocomplete": "off", "autocapitalize": "characters"},
    )
    last4 = StringField(
        _l("Last 4 digits of your mobile"),
        validators=[DataRequired(), Regexp(r"^\d{4}$", message=_l("Enter 4 digits."))],
        render_kw={"inputmode": "numeric", "maxlength": 4, "autocomplete": "off"},
    )
    submit = SubmitField(_l("Look up"))


class SignoffCodeForm(FlaskForm):
    code = StringField(
        _l("Sign-off code"),
        validators=[DataRequired(message=_l("Type the code printed on your receipt.")), Length(max=40)],
        render_kw={
            "placeholder": "ABCD-EFGH",
            "autocomplete": "off",
            "autocapitalize": "characters",
            "spellcheck": "false",
            "autofocus": True,
        },
    )
    submit = SubmitField(_l("Continue"))
