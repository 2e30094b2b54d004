"""Runbooks on the platform plane (/system/ops/runbooks): catalog → preflight → confirm →
start, through the start seam. The runs they start are in ``runs_ui``."""
from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import ngettext
from flask_login import current_user
from sqlalchemy import func, select

from .. import audit, controls, idempotency, seam
from ..actors import Actor
from ..api import REASON_CODES
from ..extensions import db
from ..models import AuditLog, Tenant, Workspace
from ..planes import platform_required
from ..runs import Scope, tenant_universe
from ..timeutil import utcnow
from . import inputs, lookup
from .forms import PreflightForm, RunForm
from .system import current_actor

bp = Blueprint("runbooks", __name__)

PREFLIGHT_MAX_AGE = timedelta(minutes=15)
DRIFT_TOLERANCE = 0.10


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


def scope_label(scope: dict) -> str:
    if scope.get("kind") == "workspace":
        ws = db.session.get(Workspace, scope.get("workspace_id"))
        return f"workspace {ws.name}" if ws else "a workspace"
    if scope.get("kind") == "single_tenant":
        tenant = db.session.get(Tenant, scope.get("tenant_id"))
        return f"tenant {tenant.name}" if tenant else "a tenant"
    return "all tenants"


def run_preflight(runbook, scope: dict) -> dict:
    """Preflight is read-only by contract; the savepoint rollback makes sure of it."""
    nested = db.session.begin_nested()
    try:
        result = dict(runbook.preflight(dict(scope)))
    finally:
        nested.rollback()
    result.setdefault("affected_count", 0)
    result.setdefault("total_count", 0)
    result.setdefault("estimated_tenants", 0)
    return result


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
        scope = form.scope()
        result = run_preflight(runbook, scope)
        paused = controls.paused_workspaces(runbook.control_key)
        if scope["kind"] == "all_tenants" and paused:
            result["paused_tenants"] = sum(1 for _, ws in tenant_universe(Scope("all_tenants")) if ws in paused)
        event = audit.record(
            "platform.ops.runbooks.preflight", actor=current_actor(),
            workspace_id=scope.get("workspace_id"), tenant_id=scope.get("tenant_id"),
            target=("runbook", runbook.key, runbook.label), summary=f"Preflight of {runbook.label}",
            metadata={"runbook": runbook.key, "scope": scope, "result": result},
        )
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


def load_preflight(runbook, preflight_id) -> tuple[AuditLog | None, str | None]:
    """The preflight this start relies on: this operator's, this runbook's, fresh."""
    event = db.session.get(AuditLog, preflight_id) if preflight_id else None
    if (event is None or event.action != "platform.ops.runbooks.preflight" or event.actor_type != "platform"
            or event.actor_id != current_user.id or (event.meta or {}).get("runbook") != runbook.key):
        return None, "Run a preflight first: a run only starts from a preflight of the same scope."
    if utcnow() - event.recorded_at > PREFLIGHT_MAX_AGE:
        return None, "This preflight is older than 15 minutes. Run the preflight again to see current numbers."
    return event, None


@bp.route("/runbooks/<key>/confirm", methods=["GET", "POST"])
@platform_required("platform.runbooks.view", "platform.runbooks.run")
def confirm(key: str):
    runbook = visible_runbook(key)
    form = RunForm()
    form.reason_code.choices = [("", "Choose a reason…")] + [(c, c.replace("_", " ").title()) for c in REASON_CODES]
    preflight_id = inputs.arg_int("preflight", source=request.values)
    event, problem = load_preflight(runbook, preflight_id)
    if event is None:
        flash(problem, "warning")
        return redirect(url_for("runbooks.preflight", key=key))
    scope, result = event.meta["scope"], event.meta["result"]
    form.preflight.data = event.id
    actor = current_actor()
    reason_required = scope["kind"] in runbook.reason_required_scopes or actor.break_glass
    outcome = None
    # Nothing to change: the page says so and offers no start; a POST (an old tab) starts nothing.
    nothing_to_do = not result.get("affected_count")
    if request.method == "POST" and not nothing_to_do and form.validate_on_submit():
        if form.confirmation.data.strip() != runbook.confirmation_word:
            form.confirmation.errors.append(f"Type {runbook.confirmation_word} exactly to confirm.")
        reason_text = (form.reason_text.data or "").strip()
        if reason_required and len(reason_text) < 5:
            form.reason_text.errors.append(
                "A reason (at least 5 characters) is required for this scope"
                + (" and during break-glass." if actor.break_glass else "."))
        if not form.errors:
            try:  # before the drift check: a resubmit is answered with what the first did
                key = idempotency.claim(f"runbook.start:{runbook.key}")
            except idempotency.AlreadySubmitted as done:
                flash("This confirmation was already submitted; nothing was started again.", "info")
                return redirect(done.result_url or url_for("runs.runs_list"))
            drift = _drift(runbook, scope, result)
            if drift is not None:
                form.confirmation.errors.append(drift)
            else:
                outcome = _start(runbook, scope, result, event, actor, form.reason_code.data, reason_text)
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
                           nothing_to_do=nothing_to_do,
                           reason_required=reason_required, decision=controls.evaluate(runbook.control_key, None)), status


def _drift(runbook, scope: dict, before: dict) -> str | None:
    """Refuse when the world moved since the preflight (more than 10% either way)."""
    now = run_preflight(runbook, scope)["affected_count"]
    was = before.get("affected_count", 0)
    if abs(now - was) > DRIFT_TOLERANCE * max(was, 1):
        return ngettext("The preflight found %(was)s item to change; there are now %(now)s. "
                        "Run the preflight again before starting.",
                        "The preflight found %(was)s items to change; there are now %(now)s. "
                        "Run the preflight again before starting.", was, was=f"{was:,}", now=f"{now:,}")
    return None


def _start(runbook, scope: dict, result: dict, event, actor: Actor, reason_code: str, reason_text: str):
    outcome = seam.start(
        runbook.key, scope=Scope(scope["kind"], scope.get("workspace_id"), scope.get("tenant_id")), actor=actor,
        source="system_ui",
        context={"runbook": runbook.key, "preflight": result, "preflight_audit_id": event.id,
                 "reason_code": reason_code, "reason_text": reason_text},
    )
    if outcome.status == "started":
        audit.record("platform.ops.runbooks.start", actor=actor, workspace_id=scope.get("workspace_id"),
                     tenant_id=scope.get("tenant_id"), target=("operation_run", outcome.run.id, runbook.label),
                     summary=f"Started {runbook.label} for {scope_label(scope)}",
                     metadata={"runbook": runbook.key, "scope": scope, "reason_code": reason_code,
                               "reason_text": reason_text, "break_glass": actor.break_glass,
                               "preflight_audit_id": event.id})
    return outcome
