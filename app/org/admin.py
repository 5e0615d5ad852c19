"""Administration screens for the organisation model."""

from __future__ import annotations

from flask import flash, request
from flask_admin import BaseView, expose
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from app.admin import SecureMixin, SecureModelView, validate_code
from app.extensions import db
from app.org.models import (
    Building,
    Community,
    Compound,
    FirmContract,
    Grid,
    PartyBranch,
    PropertyFirm,
    ServiceStation,
    Street,
)

ORG = _l("Organisation")
CODE_ARGS = {"validators": [DataRequired(), validate_code], "description": _l("Short unique code, e.g. C01")}
NAME_ARGS = {"validators": [DataRequired(), Length(max=100)]}
PHONE_ARGS = {"validators": [Optional(), Regexp(r"^[0-9+\- ]{5,30}$", message=_l("Digits, spaces, + and - only."))]}

LABELS = {
    "code": _l("Code"),
    "name": _l("Name"),
    "street": _l("Street"),
    "community": _l("Community"),
    "grid": _l("Grid"),
    "compound": _l("Compound"),
    "address": _l("Address"),
    "phone": _l("Phone"),
    "firm": _l("Property firm"),
    "start_date": _l("Start date"),
    "end_date": _l("End date"),
    "credit_code": _l("Unified social credit code"),
    "contact_name": _l("Contact person"),
    "contact_phone": _l("Contact phone"),
    "created_at": _l("Created"),
    "buildings": _l("Buildings"),
    "compounds": _l("Compounds"),
    "communities": _l("Communities"),
    "grids": _l("Grids"),
    "stations": _l("Service stations"),
    "contracts": _l("Contracts"),
    "branch": _l("Party branch"),
}


class OrgView(SecureModelView):
    column_labels = LABELS
    form_excluded_columns = ("created_at",)
    column_exclude_list = ("created_at",)
    form_args = {"code": CODE_ARGS, "name": NAME_ARGS}
    column_searchable_list = ("code", "name")
    column_default_sort = "code"


class StreetView(OrgView):
    form_excluded_columns = ("created_at", "communities")


class CommunityView(OrgView):
    column_list = ("code", "name", "street")
    column_filters = ("street.name",)
    form_columns = ("code", "name", "street")
    form_args = {"code": CODE_ARGS, "name": NAME_ARGS, "street": {"validators": [DataRequired()]}}


class GridView(OrgView):
    column_list = ("code", "name", "community")
    column_filters = ("community.name",)
    form_columns = ("code", "name", "community", "compounds")
    form_args = {"code": CODE_ARGS, "name": NAME_ARGS, "community": {"validators": [DataRequired()]}}

    def on_model_change(self, form, model, is_created):
        for compound in model.compounds:
            if model.community is not None and compound.community_id != model.community.id:
                raise ValidationError(
                    _("%(compound)s belongs to another community than the grid.", compound=compound.name)
                )


class CompoundView(OrgView):
    column_list = ("code", "name", "community", "grid", "address")
    column_filters = ("community.name", "grid.name")
    form_columns = ("code", "name", "community", "grid", "address")
    form_args = {
        "code": CODE_ARGS,
        "name": NAME_ARGS,
        "community": {"validators": [DataRequired()]},
        "address": {"validators": [Optional(), Length(max=200)]},
    }

    def on_model_change(self, form, model, is_created):
        if model.grid is not None and model.community is not None and model.grid.community_id != model.community.id:
            raise ValidationError(_("The grid %(grid)s belongs to another community.", grid=model.grid.name))


class BuildingView(OrgView):
    column_list = ("compound", "name")
    column_searchable_list = ("name",)
    column_default_sort = "id"
    column_filters = ("compound.name",)
    form_columns = ("compound", "name")
    form_args = {"name": {"validators": [DataRequired(), Length(max=50)]}, "compound": {"validators": [DataRequired()]}}


class StationView(OrgView):
    column_list = ("code", "name", "community", "address", "phone")
    form_columns = ("code", "name", "community", "address", "phone")
    form_args = {
        "code": CODE_ARGS,
        "name": NAME_ARGS,
        "phone": PHONE_ARGS,
        "community": {"validators": [DataRequired()]},
    }


class FirmView(OrgView):
    column_list = ("code", "name", "credit_code", "contact_name", "contact_phone")
    form_columns = ("code", "name", "credit_code", "contact_name", "contact_phone")
    form_args = {
        "code": CODE_ARGS,
        "name": NAME_ARGS,
        "contact_phone": PHONE_ARGS,
        "credit_code": {
            "validators": [
                Optional(),
                Regexp(
                    r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$",
                    message=_l("A unified social credit code has 18 characters (digits and capital letters)."),
                ),
            ]
        },
    }

    def on_model_change(self, form, model, is_created):
        if model.credit_code == "":
            model.credit_code = None


class ContractView(OrgView):
    column_list = ("compound", "firm", "start_date", "end_date")
    column_searchable_list = ()
    column_default_sort = ("start_date", True)
    column_filters = ("compound.name", "firm.name", "start_date", "end_date")
    form_columns = ("compound", "firm", "start_date", "end_date")
    form_args = {
        "compound": {"validators": [DataRequired()]},
        "firm": {"validators": [DataRequired()]},
        "start_date": {"validators": [DataRequired()]},
    }

    def on_model_change(self, form, model, is_created):
        if model.end_date is not None and model.end_date < model.start_date:
            raise ValidationError(_("The end date is before the start date."))
        overlapping = [
            other
            for other in model.compound.contracts
            if other is not model
            and other.id != model.id
            and other.start_date <= (model.end_date or other.start_date.max)
            and model.start_date <= (other.end_date or model.start_date.max)
        ]
        if overlapping:
            raise ValidationError(
                _(
                    "%(compound)s already has a contract in this period (%(other)s). End that one first.",
                    compound=model.compound.name,
                    other=str(overlapping[0]),
                )
            )


class BranchView(OrgView):
    column_list = ("code", "name", "compound")
    form_columns = ("code", "name", "compound")
    form_args = {"code": CODE_ARGS, "name": NAME_ARGS, "compound": {"validators": [DataRequired()]}}


def register(admin) -> None:
    admin.add_view(StreetView(Street, db, name=_l("Streets"), category=ORG))
    admin.add_view(CommunityView(Community, db, name=_l("Communities"), category=ORG))
    admin.add_view(GridView(Grid, db, name=_l("Grids"), category=ORG))
    admin.add_view(CompoundView(Compound, db, name=_l("Compounds"), category=ORG))
    admin.add_view(BuildingView(Building, db, name=_l("Buildings"), category=ORG))
    admin.add_view(StationView(ServiceStation, db, name=_l("Service stations"), category=ORG))
    admin.add_view(FirmView(PropertyFirm, db, name=_l("Property firms"), category=ORG))
    admin.add_view(ContractView(FirmContract, db, name=_l("Firm contracts"), category=ORG))
    admin.add_view(BranchView(PartyBranch, db, name=_l("Party branches"), category=ORG))
    admin.add_view(
        OrgImportView(name=_l("Import from a file"), endpoint="orgimport", url="/admin/org-import", category=ORG)
    )


class OrgImportForm(FlaskForm):
    file = FileField(_l("File (CSV or XLSX)"), validators=[FileRequired(message=_l("Choose a file to import."))])
    dry_run = BooleanField(_l("Dry run: check the file and show what would change, write nothing"), default=True)


#: an organisation file is small (a row per compound); anything larger is refused before it is parsed
MAX_IMPORT_BYTES = 5 * 1024 * 1024


class OrgImportView(SecureMixin, BaseView):
    """The organisation import (``flask org-import``) as a page: upload, dry run, row errors, import."""

    @expose("/", methods=("GET", "POST"))
    def index(self):
        """Check (dry run) or import the uploaded file; every error names its row, nothing half-written."""
        import tempfile
        from pathlib import Path

        from app.audit.services import record_audit
        from app.org.importer import KIND_LABELS, ImportFailed, import_rows, read_table

        form = OrgImportForm()
        if request.method == "GET":
            return self.render("admin/org_import.html", form=form, errors=None, report=None)
        if not form.validate_on_submit():
            return self.render("admin/org_import.html", form=form, errors=None, report=None), 422
        upload = form.file.data
        suffix = Path(upload.filename or "").suffix.lower()[:8]
        data = upload.read(MAX_IMPORT_BYTES + 1)
        if len(data) > MAX_IMPORT_BYTES:
            form.file.errors.append(_("The file is larger than %(mb)d MB.", mb=MAX_IMPORT_BYTES // (1024 * 1024)))
            return self.render("admin/org_import.html", form=form, errors=None, report=None), 413
        dry_run = bool(form.dry_run.data)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                report = import_rows(read_table(path))
            except ImportFailed as failed:
                db.session.rollback()
                return self.render("admin/org_import.html", form=form, errors=failed.errors, report=None), 422
        created = [(str(KIND_LABELS[k]), v) for k, v in sorted(report.created.items())]
        if dry_run:
            db.session.rollback()
        else:
            record_audit(
                current_user._get_current_object(),
                "org.imported",
                target="organisation",
                details={"rows": report.rows, "created": dict(report.created), "file": (upload.filename or "")[:100]},
            )
            db.session.commit()
            flash(_("Imported %(rows)d rows.", rows=report.rows), "success")
        return self.render(
            "admin/org_import.html", form=form, errors=None, report=report, created=created, dry_run=dry_run
        )
