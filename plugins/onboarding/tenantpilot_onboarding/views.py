"""Tenant plane: /admin/onboarding — the draft list and the wizard of one draft.

Who may do what (SPEC 1, 5): the list and new drafts belong to the signed-in user's
current workspace (the one the tenant list shows); a draft's own pages to the draft's
workspace. A member without ``tenant.manage`` there gets 403, a non-member 404 (the
draft's existence is not disclosed). Every POST carries a CSRF token; bad input
re-renders its step with the errors next to the fields and status 400.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from sqlalchemy import select
from wtforms import BooleanField, StringField, ValidationError
from wtforms.validators import DataRequired, Length

from tenantpilot.sdk import (Membership, SafeForm, Workspace, db, form_text, provider_connection,
                             registered_providers, utcnow, validate_provider_settings)
from . import service
from .models import OnboardingDraft

bp = Blueprint("onboarding_admin", __name__, url_prefix="/onboarding")
FORM_EXPIRED = "The form expired; reload the page and try again."
# After a verification run succeeded, the live panel keeps polling this long for the
# checkpoint (completed by the run_completed hook) before offering "Continue" itself.
HOOK_GRACE_SECONDS = 30


def _strip(value):
    return value.strip() if isinstance(value, str) else value


class IdentifyForm(SafeForm):
    display_name = StringField("Tenant display name", filters=[_strip], validators=[
        DataRequired(message="Enter the tenant's display name."),
        Length(max=200, message="The display name must be at most 200 characters.")])
    external_id = StringField("Entra tenant ID", filters=[service.normalize_guid], validators=[
        DataRequired(message="Enter the tenant's Entra tenant ID (a GUID).")])

    def __init__(self, *args, draft_id: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.draft_id = draft_id

    def validate_external_id(self, field):
        error = service.guid_error(field.data, exclude_draft_id=self.draft_id)
        if error:
            raise ValidationError(error)


class ReadyForm(SafeForm):
    acknowledge = BooleanField("I understand that features needing the missing permissions will fail for this "
                               "tenant until they are granted")


class ActivateForm(SafeForm):
    tenant_name = StringField("Type the tenant name to confirm", filters=[_strip],
                              validators=[DataRequired(message="Type the tenant name to confirm.")])

    def __init__(self, *args, expected: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.expected = expected

    def validate_tenant_name(self, field):
        if field.data != self.expected:
            raise ValidationError(f"Type the tenant name exactly as shown: {self.expected}")


# --- access ----------------------------------------------------------------------------

def _current_membership() -> Membership | None:
    """The membership of the workspace the tenant list shows (admin.index's choice)."""
    memberships = db.session.scalars(select(Membership).join(Workspace).where(Membership.user_id == current_user.id)
                                     .order_by(Workspace.name)).all()
    if not memberships:
        return None
    return {m.workspace_id: m for m in memberships}.get(session.get("workspace_id")) or memberships[0]


def _managing_membership() -> Membership:
    membership = _current_membership()
    if membership is None or service.MANAGE not in membership.capabilities:
        abort(403)
    g.membership = membership
    return membership


def _draft_or_404(draft_id: int) -> OnboardingDraft:
    """The draft, if the user is a member of its workspace (else 404) with tenant.manage
    (else 403)."""
    draft = db.session.get(OnboardingDraft, draft_id)
    membership = current_user.membership_for(draft.workspace_id) if draft is not None else None
    if membership is None:
        abort(404)
    if service.MANAGE not in membership.capabilities:
        abort(403)
    g.membership = membership
    return draft


def _csrf_or_400() -> None:
    if not SafeForm().validate_on_submit():
        abort(400, FORM_EXPIRED)


# --- list and identify -----------------------------------------------------------------

@bp.get("/")
@login_required
def index():
    membership = _managing_membership()
    drafts = service.drafts_of(membership.workspace_id)
    return render_template("tenantpilot_onboarding/list.html", membership=membership, workspace=membership.workspace,
                           drafts=drafts, **_helpers())


@bp.get("/new")
@login_required
def new():
    membership = _managing_membership()
    return _render_identify(membership, IdentifyForm(formdata=None))


def _render_identify(membership, form, draft=None, status=200):
    return render_template("tenantpilot_onboarding/identify.html", membership=membership,
                           workspace=draft.workspace if draft else membership.workspace, form=form, draft=draft,
                           **_helpers()), status


@bp.post("/")
@login_required
def create():
    membership = _managing_membership()
    _csrf_or_400()
    form = IdentifyForm()
    if not form.validate():
        return _render_identify(membership, form, status=400)
    draft = service.create_draft(membership.workspace_id, form.display_name.data, form.external_id.data, current_user)
    if draft is None:  # lost a race for the GUID to another request
        form.external_id.errors = ["Another onboarding draft already uses this Entra tenant ID."]
        return _render_identify(membership, form, status=400)
    flash(f"Draft saved: {draft.display_name}. Next, connect a provider.", "info")
    return redirect(url_for(".draft", draft_id=draft.id))


@bp.post("/<int:draft_id>/identify")
@login_required
def update_identity(draft_id: int):
    draft = _draft_or_404(draft_id)
    _csrf_or_400()
    if draft.tenant_id is not None:
        abort(400, "The tenant has been created; its name and tenant ID can no longer be changed here.")
    form = IdentifyForm(draft_id=draft.id)
    if not form.validate():
        return _render_identify(g.membership, form, draft, status=400)
    outcome = service.update_identity(draft, form.display_name.data, form.external_id.data, current_user)
    if outcome == "guid_taken":
        form.external_id.errors = ["Another onboarding draft already uses this Entra tenant ID."]
        return _render_identify(g.membership, form, draft, status=400)
    if outcome == "locked":
        abort(400, "The tenant has been created; its name and tenant ID can no longer be changed here.")
    flash("Draft details saved." if outcome == "updated" else "Nothing changed.", "info")
    return redirect(url_for(".draft", draft_id=draft_id))


# --- the wizard ------------------------------------------------------------------------

def _helpers() -> dict:
    return {"checkpoints": service.CHECKPOINTS, "step_labels": service.STEP_LABELS,
            "state_badges": service.STATE_BADGES, "completed_count": service.completed_count,
            "next_checkpoint": service.next_checkpoint}


def _render(draft: OnboardingDraft, *, status=200, chosen=None, values=None, errors=None, ready_form=None,
            activate_form=None):
    registered = registered_providers()
    chosen = chosen if chosen in registered else (draft.provider if draft.provider in registered
                                                  else next(iter(registered), None))
    conn = provider_connection(draft.tenant_id) if draft.tenant_id else None
    if values is None:
        values = dict(conn.settings or {}) if conn is not None and conn.provider == chosen else {}
        provider = registered.get(chosen)
        if provider and any(f.name == "tenant_guid" for f in provider.fields) and not values.get("tenant_guid"):
            values["tenant_guid"] = draft.external_id  # the directory id the draft was identified by
    expected = draft.tenant.name if draft.tenant else draft.display_name
    return render_template(
        "tenantpilot_onboarding/draft.html", draft=draft, membership=g.membership, workspace=draft.workspace,
        step=service.next_checkpoint(draft), providers=registered, chosen=chosen, values=values, errors=errors or {},
        form=SafeForm(formdata=None), ready_form=ready_form or ReadyForm(formdata=None),
        activate_form=activate_form or ActivateForm(formdata=None, expected=expected),
        connection_has_secret=bool(conn is not None and conn.secret_ref and conn.provider == chosen),
        required_permissions=service.required_permissions(), **_live_args(draft), **_helpers()), status


def _live_args(draft: OnboardingDraft) -> dict:
    run = draft.verification_run
    waiting = (run is not None and run.outcome == "succeeded" and draft.checkpoint == "connect_provider"
               and run.completed_at is not None
               and (utcnow() - run.completed_at).total_seconds() < HOOK_GRACE_SECONDS)
    return {"run": run, "polling": run is not None and (run.is_active or waiting), "waiting_for_checkpoint": waiting}


@bp.get("/<int:draft_id>")
@login_required
def draft(draft_id: int):
    d = _draft_or_404(draft_id)
    if request.args.get("step") == "identify" and d.tenant_id is None:
        return _render_identify(g.membership, IdentifyForm(formdata=None, obj=d, draft_id=d.id), d)
    return _render(d, chosen=request.args.get("provider"))


@bp.post("/<int:draft_id>/connect")
@login_required
def connect(draft_id: int):
    d = _draft_or_404(draft_id)
    _csrf_or_400()
    if service.reached(d, "verify_access"):
        abort(400, "Access was verified with the current connection; change it on the tenant's Provider tab.")
    provider = registered_providers().get(form_text("provider"))
    if provider is None:
        return _render(d, errors={"provider": "Choose one of the installed providers."}, status=400)
    values = {f.name: form_text(f.name) for f in provider.fields}
    errors = validate_provider_settings(provider, values)
    conn = provider_connection(d.tenant_id) if d.tenant_id else None
    if conn is not None and conn.provider == provider.name and conn.secret_ref:
        for f in provider.fields:  # a blank secret reference keeps the stored one
            if f.kind == "secret_ref" and errors.get(f.name, "").endswith("is required."):
                errors.pop(f.name)
    if errors:
        shown = {f.name: values[f.name] for f in provider.fields if f.kind != "secret_ref"}
        return _render(d, chosen=provider.name, values=shown, errors=errors, status=400)
    outcome = service.connect_provider(d, provider, values, current_user)
    if outcome == "guid_taken":
        return _render(db.session.get(OnboardingDraft, draft_id), chosen=provider.name, status=400,
                       errors={"provider": "A tenant with this Entra tenant ID already exists; nothing was created."})
    if outcome == "busy":
        return _render(d, chosen=provider.name, status=409,
                       errors={"provider": "A verification is running; wait for it to finish before changing the "
                                           "connection."})
    messages = {"connected": f"Tenant created and connected to {provider.label}. Next, verify access.",
                "updated": f"Connection saved: {provider.label}. Verify access with the new settings.",
                "stale": "The provider was already connected.",
                "locked": "The provider was already connected."}
    flash(messages[outcome], "info")
    return redirect(url_for(".draft", draft_id=draft_id))


@bp.post("/<int:draft_id>/verify")
@login_required
def verify(draft_id: int):
    """Start the verification run, or — when the last one succeeded and its checkpoint
    is still open — complete the checkpoint ("Continue")."""
    d = _draft_or_404(draft_id)
    _csrf_or_400()
    if d.checkpoint != "connect_provider":
        if service.reached(d, "verify_access"):
            flash("Access was already verified.", "info")
            return redirect(url_for(".draft", draft_id=draft_id))
        abort(400, "Connect a provider before verifying access.")
    run = d.verification_run
    if run is not None and run.outcome == "succeeded":
        service.complete_verification(d.id, run.id)
        return redirect(url_for(".draft", draft_id=draft_id))
    result = service.start_verification(d, current_user)
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    flash(result.message, "info" if result.ok else "error")
    return redirect(url_for(".draft", draft_id=draft_id))


@bp.get("/<int:draft_id>/verify/live")
@login_required
def verify_live(draft_id: int):
    """The verification panel, polled by htmx while its run is active. Once the
    checkpoint is complete, the browser goes to the draft's next step."""
    d = _draft_or_404(draft_id)
    if d.checkpoint != "connect_provider":
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url_for(".draft", draft_id=draft_id)
        return response
    return render_template("tenantpilot_onboarding/_verify_live.html", draft=d, form=SafeForm(formdata=None),
                           **_live_args(d))


@bp.post("/<int:draft_id>/ready")
@login_required
def ready(draft_id: int):
    d = _draft_or_404(draft_id)
    _csrf_or_400()
    form = ReadyForm()
    if d.checkpoint != "verify_access":
        if service.reached(d, "ready_for_activation"):
            flash("The draft was already marked ready for activation.", "info")
            return redirect(url_for(".draft", draft_id=draft_id))
        abort(400, "Verify access before marking the draft ready.")
    if (d.verification or {}).get("missing_permissions") and not form.acknowledge.data:
        form.acknowledge.errors = ["Acknowledge the missing permissions to continue."]
        return _render(d, ready_form=form, status=400)
    if service.mark_ready(d, current_user):
        flash("Ready for activation.", "info")
    return redirect(url_for(".draft", draft_id=draft_id))


@bp.post("/<int:draft_id>/activate")
@login_required
def activate(draft_id: int):
    d = _draft_or_404(draft_id)
    _csrf_or_400()
    if d.checkpoint != "ready_for_activation":
        if d.checkpoint == "activated":
            flash("The tenant was already activated.", "info")
            return redirect(url_for(".draft", draft_id=draft_id))
        abort(400, "Mark the draft ready for activation first.")
    form = ActivateForm(expected=d.tenant.name)
    if not form.validate():
        return _render(d, activate_form=form, status=400)
    if d.tenant.status != "onboarding":
        abort(400, "The tenant was archived meanwhile; it cannot be activated from this draft.")
    service.activate(d, current_user)  # the page itself says "Onboarding complete"
    return redirect(url_for(".draft", draft_id=draft_id))
