"""Tenant plane: backups (/admin/t/<tenant>/backups) and restore runs
(/admin/t/<tenant>/restore-runs) with the create wizard of SPEC 5:

backup set → scope (all / selected items) → safety checks → preview (per-item diff) →
confirm (dry-run toggle, acknowledge impact, type the tenant name) → create.

The wizard carries its selection in the form of every step and re-validates it each
time (a backup set or an item of another tenant is a 404). Only the final POST creates
anything: a dry run records the preview; "Execute restore" goes through the start seam.
"""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select
from wtforms import BooleanField, RadioField, SelectMultipleField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, InputRequired

from tenantpilot.sdk import (Actor, AlreadySubmitted, BoundedIntegerField, OperationRun, SafeForm, arg_int,
                             claim_submission, coerce_id, db, evaluate_control, provider_connection, provider_of,
                             remember_submission, tenant_required)
from . import service
from .models import BackupItem, BackupSet, RestoreRun, RestoreRunItem

bp = Blueprint("restore_admin", __name__)
PAGE_SIZE = 50
STEPS = ("Backup set", "Scope", "Safety checks", "Preview", "Confirm")


class SelectionForm(SafeForm):
    backup_set_id = BoundedIntegerField("Backup set", minimum=1, validators=[InputRequired(message="Choose a backup set.")])
    scope = RadioField("Scope", choices=[SelectChoice("all", "All items"), SelectChoice("selected", "Selected items")],
                       validators=[DataRequired(message="Choose all items or selected items.")])
    item_ids = SelectMultipleField("Items", coerce=coerce_id, validate_choice=False)

    def validate_item_ids(self, field):
        if self.scope.data == "selected" and not field.data:
            from wtforms import ValidationError

            raise ValidationError("Choose at least one item to restore.")


class ConfirmForm(SelectionForm):
    dry_run = BooleanField("Dry run: record the preview only, apply nothing")
    acknowledge = BooleanField("I understand this overwrites the current settings of the selected policies",
                               validators=[DataRequired(message="Acknowledge the impact to continue.")])
    tenant_name = StringField("Type the tenant name to confirm",
                              validators=[DataRequired(message="Type the tenant name to confirm.")])

    def validate_tenant_name(self, field):
        from wtforms import ValidationError

        if field.data.strip() != g.tenant.name:
            raise ValidationError(f"Type the tenant name exactly as shown: {g.tenant.name}")


class RerunForm(SafeForm):
    acknowledge = ConfirmForm.acknowledge
    tenant_name = ConfirmForm.tenant_name
    validate_tenant_name = ConfirmForm.validate_tenant_name


def _require_restore_capability():
    """The wizard and every restore start need tenant.manage + restore.execute (SPEC 1):
    an operator gets 403 here, after tenant_required's 404 for non-members."""
    if not set(service.EXECUTE_CAPABILITIES) <= g.membership.capabilities:
        abort(403)


def _selection(form: SelectionForm, tenant_id: int):
    """(backup, items) of a validated form; 404 for foreign ids."""
    backup = service.backup_or_404(tenant_id, form.backup_set_id.data)
    return backup, service.selected_items(backup, form.scope.data, form.item_ids.data or [])


def _page_args(step: int, **kw) -> dict:
    return {"tenant": g.tenant, "membership": g.membership, "steps": STEPS, "step": step,
            "decision": evaluate_control(service.EXECUTE_KEY, g.tenant.workspace_id), **kw}


# --- backups ---------------------------------------------------------------------------

@bp.get("/t/<int:tenant_id>/backups")
@tenant_required("tenant.view")
def backups(tenant_id: int):
    sets = db.session.scalars(select(BackupSet).where(BackupSet.tenant_id == tenant_id)
                              .order_by(BackupSet.id.desc()).limit(PAGE_SIZE)).all()
    last_capture = db.session.scalars(
        select(OperationRun).where(OperationRun.tenant_id == tenant_id, OperationRun.type == service.CAPTURE_KEY)
        .order_by(OperationRun.id.desc()).limit(1)).first()
    return render_template("tenantpilot_restore/backups.html", tenant=g.tenant, membership=g.membership,
                           backups=sets, last_capture=last_capture, connection=provider_connection(tenant_id),
                           can_capture="tenant.manage" in g.membership.capabilities and g.tenant.status == "active")


@bp.post("/t/<int:tenant_id>/backups/capture")
@tenant_required("tenant.view")
def capture(tenant_id: int):
    if not SafeForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    result = service.start_capture(tenant_id, Actor.human(current_user))
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    if result.ok:
        flash(f"{result.message} (run #{result.run.id})" if result.status == "started" else result.message, "info")
    else:
        flash(result.message, "error")
    return redirect(url_for(".backups", tenant_id=tenant_id))


@bp.get("/t/<int:tenant_id>/backups/<int:backup_set_id>")
@tenant_required("tenant.view")
def backup_detail(tenant_id: int, backup_set_id: int):
    backup = service.backup_or_404(tenant_id, backup_set_id)
    return render_template("tenantpilot_restore/backup_detail.html", tenant=g.tenant, membership=g.membership,
                           backup=backup, items=backup.items, policy_types=_policy_types(tenant_id))


def _policy_types(tenant_id: int) -> dict:
    provider = provider_of(tenant_id)
    return dict(provider.policy_types) if provider else {}


# --- restore runs ----------------------------------------------------------------------

@bp.get("/t/<int:tenant_id>/restore-runs")
@tenant_required("tenant.view")
def restore_runs(tenant_id: int):
    rows = db.session.scalars(select(RestoreRun).where(RestoreRun.tenant_id == tenant_id)
                              .order_by(RestoreRun.id.desc()).limit(PAGE_SIZE)).all()
    can_restore = set(service.EXECUTE_CAPABILITIES) <= g.membership.capabilities and g.tenant.status == "active"
    return render_template("tenantpilot_restore/restore_runs.html", tenant=g.tenant, membership=g.membership,
                           runs=rows, outcome_of=service.outcome_of, can_restore=can_restore,
                           decision=evaluate_control(service.EXECUTE_KEY, g.tenant.workspace_id) if can_restore else None)


@bp.get("/t/<int:tenant_id>/restore-runs/new")
@tenant_required("tenant.view")
def wizard_backup(tenant_id: int):
    _require_restore_capability()
    sets = db.session.scalars(select(BackupSet).where(BackupSet.tenant_id == tenant_id)
                              .order_by(BackupSet.id.desc()).limit(PAGE_SIZE)).all()
    return render_template("tenantpilot_restore/wizard_backup.html", **_page_args(1, backups=sets))


@bp.get("/t/<int:tenant_id>/restore-runs/new/scope")
@tenant_required("tenant.view")
def wizard_scope(tenant_id: int):
    _require_restore_capability()
    backup = service.backup_or_404(tenant_id, arg_int("backup_set_id"))
    form = SelectionForm(backup_set_id=backup.id, scope="all")
    return render_template("tenantpilot_restore/wizard_scope.html",
                           **_page_args(2, backup=backup, items=backup.items, form=form,
                                        policy_types=_policy_types(tenant_id)))


@bp.post("/t/<int:tenant_id>/restore-runs/new/checks")
@tenant_required("tenant.view")
def wizard_checks(tenant_id: int):
    _require_restore_capability()
    form = SelectionForm()
    backup = service.backup_or_404(tenant_id, form.backup_set_id.data)
    if not form.validate():
        return render_template("tenantpilot_restore/wizard_scope.html",
                               **_page_args(2, backup=backup, items=backup.items, form=form,
                                            policy_types=_policy_types(tenant_id))), 400
    backup, items = _selection(form, tenant_id)
    checks = service.safety_checks(g.tenant, backup, items)
    return render_template("tenantpilot_restore/wizard_checks.html",
                           **_page_args(3, backup=backup, items=items, form=form, checks=checks,
                                        blocked=service.blocking(checks)))


def _render_confirm(form, backup, items, *, status=200, feedback=None):
    # A refused start (paused, queue down) answers without reading the provider again:
    # a blocked restore makes no provider call at all.
    rows = None if feedback is not None else service.preview(g.tenant.id, items)
    return render_template("tenantpilot_restore/wizard_preview.html",
                           **_page_args(4, backup=backup, items=items, form=form, rows=rows, feedback=feedback,
                                        policy_types=_policy_types(g.tenant.id))), status


@bp.post("/t/<int:tenant_id>/restore-runs/new/preview")
@tenant_required("tenant.view")
def wizard_preview(tenant_id: int):
    _require_restore_capability()
    selection = SelectionForm()
    if not selection.validate():
        abort(400, "The restore selection is incomplete; start the wizard again.")
    backup, items = _selection(selection, tenant_id)
    if service.blocking(service.safety_checks(g.tenant, backup, items)):
        abort(400, "A safety check failed; go back to the safety checks step.")
    form = ConfirmForm(formdata=None, backup_set_id=backup.id, scope=selection.scope.data,
                       item_ids=selection.item_ids.data)
    return _render_confirm(form, backup, items)


@bp.post("/t/<int:tenant_id>/restore-runs")
@tenant_required("tenant.view")
def create(tenant_id: int):
    """The final step: field errors re-render the confirm step (400, nothing created);
    a dry run records the preview; otherwise Execute restore through the start seam."""
    _require_restore_capability()
    form = ConfirmForm()
    backup = service.backup_or_404(tenant_id, form.backup_set_id.data)
    items = service.selected_items(backup, form.scope.data or "all", form.item_ids.data or [])
    if not form.validate():
        return _render_confirm(form, backup, items, status=400)
    try:  # a double click or a refresh of this POST creates nothing twice
        key = claim_submission(f"restore.create:{tenant_id}")
    except AlreadySubmitted as done:
        flash("This restore was already submitted; nothing was created again.", "info")
        return redirect(done.result_url or url_for(".restore_runs", tenant_id=tenant_id))
    if form.dry_run.data:
        rr = service.record_dry_run(g.tenant, backup, items, form.scope.data, current_user)
        target = url_for(".restore_run", tenant_id=tenant_id, restore_run_id=rr.id)
        remember_submission(key, target)
        flash(ngettext("Dry run #%(run)s recorded: %(num)d item previewed.",
                       "Dry run #%(run)s recorded: %(num)d items previewed.", len(items), run=rr.id), "info")
        return redirect(target)
    result, rr = service.start_restore(g.tenant, backup, items, form.scope.data, current_user)
    if result.ok and rr is not None:
        remember_submission(key, url_for(".restore_run", tenant_id=tenant_id, restore_run_id=rr.id))
    return _after_start(tenant_id, result, rr,
                        lambda feedback, status: _render_confirm(form, backup, items, status=status, feedback=feedback))


def _after_start(tenant_id, result, rr, render_feedback):
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    if result.ok and rr is not None:
        run_id = result.run.id
        flash(f"Restore #{rr.id} started (operation run #{run_id})." if result.status == "started"
              else f"Restore #{rr.id} is already queued (operation run #{run_id}).", "info")
        return redirect(url_for(".restore_run", tenant_id=tenant_id, restore_run_id=rr.id))
    # blocked (409: "Restore execution paused"), enqueue_failed (503), invalid (400)
    return render_feedback(result, result.http_status)


@bp.get("/t/<int:tenant_id>/restore-runs/<int:restore_run_id>")
@tenant_required("tenant.view")
def restore_run(tenant_id: int, restore_run_id: int):
    rr = _restore_run_or_404(tenant_id, restore_run_id)
    return _render_detail(rr)


def _restore_run_or_404(tenant_id: int, restore_run_id: int) -> RestoreRun:
    rr = db.session.get(RestoreRun, restore_run_id)
    if rr is None or rr.tenant_id != tenant_id:
        abort(404)
    return rr


def _detail_args(rr: RestoreRun) -> dict:
    counts = dict(db.session.execute(
        select(RestoreRunItem.result, func.count()).where(RestoreRunItem.restore_run_id == rr.id)
        .group_by(RestoreRunItem.result)).all())
    done = sum(v for k, v in counts.items() if k in ("applied", "unchanged", "failed"))
    return {"rr": rr, "run": rr.operation_run, "counts": counts, "done": done, "outcome": service.outcome_of(rr),
            "policy_types": _policy_types(rr.tenant_id)}


def _render_detail(rr: RestoreRun, *, form=None, feedback=None, status=200):
    can_rerun = (set(service.EXECUTE_CAPABILITIES) <= g.membership.capabilities and g.tenant.status == "active"
                 and (rr.operation_run is None or not rr.operation_run.is_active))
    return render_template("tenantpilot_restore/restore_run.html", tenant=g.tenant, membership=g.membership,
                           can_rerun=can_rerun, form=form or RerunForm(formdata=None), feedback=feedback,
                           decision=evaluate_control(service.EXECUTE_KEY, g.tenant.workspace_id) if can_rerun else None,
                           **_detail_args(rr)), status


@bp.get("/t/<int:tenant_id>/restore-runs/<int:restore_run_id>/live")
@tenant_required("tenant.view")
def restore_run_live(tenant_id: int, restore_run_id: int):
    """The progress and item table, polled by htmx while the run is active."""
    rr = _restore_run_or_404(tenant_id, restore_run_id)
    return render_template("tenantpilot_restore/_restore_live.html", tenant=g.tenant, **_detail_args(rr))


@bp.post("/t/<int:tenant_id>/restore-runs/<int:restore_run_id>/rerun")
@tenant_required("tenant.view")
def rerun(tenant_id: int, restore_run_id: int):
    """Execute a finished restore (or a dry run) again: same backup set, same items,
    same gate as the wizard."""
    _require_restore_capability()
    rr = _restore_run_or_404(tenant_id, restore_run_id)
    form = RerunForm()
    if not form.validate():
        return _render_detail(rr, form=form, status=400)
    items = list(db.session.scalars(
        select(BackupItem).join(RestoreRunItem, RestoreRunItem.backup_item_id == BackupItem.id)
        .where(RestoreRunItem.restore_run_id == rr.id).order_by(BackupItem.id)))
    result, new = service.start_restore(g.tenant, rr.backup_set, items, rr.scope, current_user, rerun_of=rr)
    return _after_start(tenant_id, result, new,
                        lambda feedback, status: _render_detail(rr, form=form, feedback=feedback, status=status))
