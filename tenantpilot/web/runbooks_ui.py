"""Runbooks on the platform plane (/system/ops/runbooks): catalog → preflight → confirm →
start, through the start seam. The runs they start are in ``runs_ui``."""
from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from .. import approvals, controls, idempotency, runbook_starts
from ..api import REASON_CODES
from ..extensions import db
from ..models import Tenant, Workspace
from ..planes import platform_required
from . import inputs, lookup
from .forms import PreflightForm, RunForm
from .system import current_actor

bp = Blueprint("runbooks", __name__)

def registry():
    return current_app.extensions["tenantpilot"].registry


def visible_runbook(key: str):
    """404 for an unknown runbook, 403 without the runbook's own capability."""
    runbook = registry().runbooks.get(key)
    if runbook is None:
        abort(404)
    if not current_user.can(runbook.capability):
        abort(403)
    return runbook


scope_label = runbook_starts.scope_label


# --- catalog -------------------------------------------------------------------------


@bp.get("/runbooks")
@platform_required("platform.runbooks.view")
def catalog():
    cards = []
    for rb in registry().runbooks.values():
        if not current_user.can(rb.capability):
            continue  # a runbook one may not run is not shown at all
        cards.append((rb, controls.evaluate(rb.control_key, None),
                      len(controls.paused_workspaces(rb.control_key))))
    return render_template("system/runbooks.html", cards=cards, can_run=current_user.can("platform.runbooks.run"))


@bp.route("/runbooks/<key>/preflight", methods=["GET", "POST"])
@platform_required("platform.runbooks.view", "platform.runbooks.run")
def preflight(key: str):
    runbook = visible_runbook(key)
    form = _preflight_form(runbook)
    if request.method == "POST" and form.validate_on_submit():
        event, _result = runbook_starts.record_preflight(runbook, form.scope(), current_actor())
        if event is not None:
            return redirect(url_for("runbooks.confirm", key=key, preflight=event.id))
        # The stored preflight is its audit row; it was spooled, so there is nothing to
        # confirm against yet (the row itself is not lost).
        form.kind.errors = ["The preflight could not be stored just now. Run it again in a moment."]
    status = 422 if request.method == "POST" else 200
    return render_template("system/preflight.html", runbook=runbook, form=form,
                           decision=controls.evaluate(runbook.control_key, None)), status


@bp.get("/tenant-options")
@platform_required("platform.runbooks.view")
def tenant_options():
    """The tenant picker's search (htmx): active, non-platform tenants only. The picker's
    input is ``tenant_query`` (``q`` is accepted too, for links)."""
    query = request.args.get("tenant_query", request.args.get("q", ""))
    tenants, total = search_tenants(query), count_tenants(query)
    return render_template("system/_tenant_options.html", tenants=tenants, total=total,
                           selected=inputs.arg_int("tenant_id"))


PICKER_LIMIT = 20


def _tenant_search(query: str):
    return lookup.tenant_query(query, active_only=True)


def search_tenants(query: str, limit: int = PICKER_LIMIT):
    return db.session.scalars(_tenant_search(query).order_by(Tenant.name).limit(limit)).all()


def count_tenants(query: str) -> int:
    return db.session.scalar(select(func.count()).select_from(_tenant_search(query).subquery()))


def _preflight_form(runbook) -> PreflightForm:
    form = PreflightForm()
    form.kind.choices = [(s, {"all_tenants": "All tenants", "workspace": "One workspace",
                              "single_tenant": "One tenant"}[s]) for s in runbook.scopes]
    if not form.kind.data:
        form.kind.data = runbook.scopes[0]
    form.workspace_id.choices = [(0, "Choose a workspace…")] + [
        (ws.id, ws.name) for ws in db.session.scalars(select(Workspace).order_by(Workspace.name))]
    query = form.tenant_query.data or ""
    picking = form.kind.data == "single_tenant" and not inputs.has_control_chars(query)
    form.tenant_matches = search_tenants(query) if picking else []
    form.tenant_total = count_tenants(query) if picking else 0
    return form


# --- confirm and start ---------------------------------------------------------------


@bp.route("/runbooks/<key>/confirm", methods=["GET", "POST"])
@platform_required("platform.runbooks.view", "platform.runbooks.run")
def confirm(key: str):
    runbook = visible_runbook(key)
    form = RunForm()
    form.reason_code.choices = [("", "Choose a reason…")] + [(c, c.replace("_", " ").title()) for c in REASON_CODES]
    preflight_id = inputs.arg_int("preflight", source=request.values)
    actor = current_actor()
    event, problem = runbook_starts.load_preflight(runbook, preflight_id, actor)
    if event is None:
        flash(problem, "warning")
        return redirect(url_for("runbooks.preflight", key=key))
    scope, result = event.meta["scope"], event.meta["result"]
    form.preflight.data = event.id
    reason_required = runbook_starts.reason_required(runbook, scope, actor)
    outcome = None
    # Nothing to change: the page says so and offers no start; a POST (an old tab) starts nothing.
    nothing_to_do = not result.get("affected_count")
    if request.method == "POST" and not nothing_to_do and form.validate_on_submit():
        reason_text = (form.reason_text.data or "").strip()
        errors = runbook_starts.confirmation_errors(runbook, scope, actor, form.confirmation.data,
                                                    form.reason_code.data, reason_text)
        for name, message in errors.items():
            getattr(form, name).errors.append(message)
        if not form.errors:
            try:  # before the drift check: a resubmit is answered with what the first did
                key = idempotency.claim(f"runbook.start:{runbook.key}")
            except idempotency.AlreadySubmitted as done:
                flash("This confirmation was already submitted; nothing was started again.", "info")
                return redirect(done.result_url or url_for("runs.runs_list"))
            drift = runbook_starts.drift(runbook, scope, result)
            if drift is not None:
                form.confirmation.errors.append(drift)
            elif approvals.needs_approval(runbook, scope):
                # Four-eyes: this scope starts nothing now; a second operator approves it.
                # A paused runbook is answered at once, as a paused start would be.
                outcome = approvals.paused_now(runbook, scope, actor, "system_ui")
                if outcome is None:
                    req = approvals.request(runbook, event, actor, form.reason_code.data, reason_text, "system_ui")
                    target = url_for("approvals.approval_detail", approval_id=req.id)
                    idempotency.remember(key, target)
                    flash("Approval requested: another operator must approve before the run starts.", "info")
                    return redirect(target)
            else:
                outcome = runbook_starts.start(runbook, event, actor, form.reason_code.data, reason_text, "system_ui")
                if outcome.status in ("started", "deduped", "scope_busy"):
                    target = url_for("runs.run_detail", run_id=outcome.run.id)
                    idempotency.remember(key, target)
                    flash(outcome.message, "info")
                    return redirect(target)
                if outcome.status == "forbidden":
                    abort(403)
    status = 200 if request.method == "GET" else (409 if outcome and outcome.status == "blocked" else 422)
    return render_template("system/confirm.html", runbook=runbook, form=form, scope=scope, result=result,
                           scope_text=scope_label(scope), preflight_event=event, outcome=outcome,
                           nothing_to_do=nothing_to_do, needs_approval=approvals.needs_approval(runbook, scope),
                           reason_required=reason_required, decision=controls.evaluate(runbook.control_key, None)), status
