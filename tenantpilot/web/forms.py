"""Flask-WTF forms (CSRF included); every form is a SafeForm (no control characters)."""
from wtforms import (HiddenField, PasswordField, RadioField, SelectField, SelectMultipleField, StringField,
                     TextAreaField, ValidationError)
from wtforms.widgets import CheckboxInput, ListWidget
from wtforms.validators import DataRequired, EqualTo, Length, NumberRange, Optional, Regexp

from .inputs import BoundedIntegerField, SafeForm, coerce_id


class LoginForm(SafeForm):
    email = StringField("E-mail", validators=[DataRequired(message="Enter your e-mail address."),
                                              Length(max=255), Regexp(r"^[^@\s]+@[^@\s]+$", message="Enter a valid e-mail address.")])
    password = PasswordField("Password", validators=[DataRequired(message="Enter your password."), Length(max=200)])


class PasswordChangeForm(SafeForm):
    current_password = PasswordField("Current password", validators=[DataRequired(message="Enter your current password."),
                                                                       Length(max=200)])
    new_password = PasswordField("New password", validators=[
        DataRequired(message="Choose a new password."),
        Length(min=10, max=200, message="Use 10 to 200 characters.")])
    confirm_password = PasswordField("Repeat the new password", validators=[
        DataRequired(message="Repeat the new password."),
        EqualTo("new_password", message="The two new passwords differ.")])


class BreakGlassForm(SafeForm):
    reason = TextAreaField("Reason", validators=[
        DataRequired(message="A reason is required for break-glass access."),
        Length(min=10, max=500, message="The reason must be 10 to 500 characters.")])
    minutes = BoundedIntegerField("Duration (minutes)", default=30, validators=[
        NumberRange(min=5, max=240, message="Choose between 5 and 240 minutes.")])


class EmptyForm(SafeForm):
    """A POST that carries only its CSRF token (logout, stop, switch)."""


class PreflightForm(SafeForm):
    """Scope of a runbook preflight. Workspace and tenant are required only for their kind."""

    kind = RadioField("Scope", validators=[DataRequired(message="Choose a scope.")])
    workspace_id = SelectField("Workspace", coerce=coerce_id, validate_choice=False, default=0)
    tenant_query = StringField("Find a tenant", validators=[Optional(), Length(max=100)])
    # No Optional(): an empty tenant must still reach validate_tenant_id ("One tenant" needs one).
    tenant_id = BoundedIntegerField("Tenant", minimum=1)

    def validate_workspace_id(self, field):
        if self.kind.data == "workspace":
            from ..extensions import db
            from ..models import Workspace

            if not field.data or db.session.get(Workspace, field.data) is None:
                raise ValidationError("Choose a workspace.")

    def validate_tenant_id(self, field):
        if self.kind.data == "single_tenant":
            from ..extensions import db
            from ..models import Tenant

            tenant = db.session.get(Tenant, field.data) if field.data else None
            if tenant is None or tenant.status != "active" or tenant.is_platform:
                raise ValidationError("Choose an active tenant from the search results.")

    def scope(self) -> dict:
        if self.kind.data == "workspace":
            return {"kind": "workspace", "workspace_id": self.workspace_id.data, "tenant_id": None}
        if self.kind.data == "single_tenant":
            from ..extensions import db
            from ..models import Tenant

            tenant = db.session.get(Tenant, self.tenant_id.data)
            return {"kind": "single_tenant", "workspace_id": tenant.workspace_id, "tenant_id": tenant.id}
        return {"kind": "all_tenants", "workspace_id": None, "tenant_id": None}


class RunForm(SafeForm):
    preflight = HiddenField()
    confirmation = StringField("Confirmation", validators=[DataRequired(message="Type the confirmation word.")])
    reason_code = SelectField("Reason", validators=[DataRequired(message="Choose a reason code.")])
    reason_text = TextAreaField("Reason details", validators=[Optional(), Length(max=500, message="At most 500 characters.")])


class ApproveForm(SafeForm):
    """Approve a four-eyes request: the runbook's confirmation word, typed again."""

    confirmation = StringField("Confirmation", validators=[DataRequired(message="Type the confirmation word."),
                                                           Length(max=100)])


class RejectForm(SafeForm):
    reason = TextAreaField("Reason", validators=[
        DataRequired(message="Give a reason for the requester."),
        Length(min=5, max=500, message="The reason must be 5 to 500 characters.")])


class ApiTokenForm(SafeForm):
    """A new API token: a name, a lifetime, and capabilities (a subset of the person's)."""

    name = StringField("Name", validators=[DataRequired(message="Give the token a name (what uses it)."),
                                           Length(max=100, message="Use at most 100 characters.")])
    days = SelectField("Expires after", coerce=coerce_id, default=90,
                       choices=[(7, "7 days"), (30, "30 days"), (90, "90 days"), (180, "180 days"), (366, "1 year")])
    # Checked against what the person holds by tokens.create (one rule for page and CLI).
    capabilities = SelectMultipleField("Capabilities", widget=ListWidget(prefix_label=False),
                                       option_widget=CheckboxInput(), validate_choice=False)

    def validate_capabilities(self, field):
        if not field.data:  # the same words tokens.create uses, shown with the other errors
            raise ValidationError("Choose at least one capability.")
