"""The "Open support diagnostics" action (SPEC 5), on the tenant dashboard and on the
tenant-plane operation-run viewer.

Post/Redirect/Get: only the POST records anything (one audit event
``support_diagnostics.opened``, one telemetry event ``product.support_diagnostics.opened``)
and redirects to the opening's page, ``…/support-diagnostics/<opening id>``. That GET builds
the bundle fresh from the live data (it is never stored) and records nothing, so a
refresh, a back button or a bookmark never counts a second opening. An opening's page is
its opener's only, for an hour; after that (or for anyone else) it goes back to where the
action lives.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user

from tenantpilot.sdk import (Actor, AuditLog, EmptyForm, OperationRun, db, record_audit, record_event,
                             tenant_required, utcnow)
from . import bundle as bundles

bp = Blueprint("support_admin", __name__)
log = logging.getLogger("tenantpilot.support_diagnostics")
CAPABILITY = "support.diagnostics"
AUDIT_ACTION = "support_diagnostics.opened"
EVENT = "product.support_diagnostics.opened"
OPENING_LIFETIME = timedelta(hours=1)


def run_and_back(tenant_id: int, run_id: int | None):
    run = None
    if run_id is not None:
        run = db.session.get(OperationRun, run_id)
        if run is None or run.tenant_id != tenant_id:
            abort(404)
    back = (url_for("admin.tenant_run", tenant_id=tenant_id, run_id=run.id) if run
            else url_for("admin.tenant_home", tenant_id=tenant_id))
    return run, back


@bp.route("/t/<int:tenant_id>/support-diagnostics", methods=["GET", "POST"])
@bp.route("/t/<int:tenant_id>/runs/<int:run_id>/support-diagnostics", methods=["GET", "POST"])
@tenant_required(CAPABILITY)
def open_diagnostics(tenant_id: int, run_id: int | None = None):
    """POST: record one opening and redirect to its page. 404 for non-members and for a
    run of another tenant, 403 for members without ``support.diagnostics``."""
    run, back = run_and_back(tenant_id, run_id)
    if request.method == "GET":
        return redirect(back)
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")

    tenant = g.tenant
    surface = "operation_run_viewer" if run else "tenant_dashboard"
    data, event = record_opening(tenant, run, surface)
    if event is None:  # the audit row was spooled: no opening id to redirect to; show it once
        return _render(tenant, run, data, surface, back)
    return redirect(url_for("support_admin.view_opening", tenant_id=tenant.id, opening_id=event.id))


def record_opening(tenant, run, surface: str):
    """Build the bundle and record one opening by the signed-in member (the page and the
    API): the audit event and the telemetry event. Returns (bundle, audit row or None
    when the row was spooled)."""
    data = bundles.build(tenant)
    metadata = {"source_surface": surface, "section_counts": bundles.section_counts(data)}
    if run:
        metadata["operation_run_id"] = run.id
    summary = "Support diagnostics opened"
    if run:
        summary += f" from operation run #{run.id}"
    elif surface == "tenant_dashboard":
        summary += " from the tenant dashboard"
    if surface == "api":
        summary += " through the API"
    # No target label and a name-free summary: the tenant's name stays out of the row.
    event = record_audit(AUDIT_ACTION, actor=Actor.human(current_user), workspace_id=tenant.workspace_id,
                         tenant_id=tenant.id, target=("tenant", tenant.id, None), summary=summary,
                         metadata=metadata)
    try:  # record() never raises by contract; this guard keeps a broken recorder from costing the page
        record_event(EVENT, workspace_id=tenant.workspace_id, tenant_id=tenant.id, user_id=current_user.id,
                         subject_type="operation_run" if run else None, subject_id=str(run.id) if run else None,
                         metadata={"source_surface": surface, "operation_type": run.type if run else None})
    except Exception:
        log.exception("support diagnostics: telemetry recording raised")
        db.session.rollback()
    return data, event


@bp.get("/t/<int:tenant_id>/support-diagnostics/<int:opening_id>")
@tenant_required(CAPABILITY)
def view_opening(tenant_id: int, opening_id: int):
    """The bundle of one recorded opening, rebuilt from live data; records nothing."""
    event = db.session.get(AuditLog, opening_id)
    if (event is None or event.action != AUDIT_ACTION or event.tenant_id != tenant_id
            or event.actor_type != "human" or event.actor_id != current_user.id):
        abort(404)
    run, back = run_and_back(tenant_id, (event.meta or {}).get("operation_run_id"))
    if utcnow() - event.recorded_at > OPENING_LIFETIME:
        return redirect(back)
    surface = (event.meta or {}).get("source_surface", "tenant_dashboard")
    return _render(g.tenant, run, bundles.build(g.tenant), surface, back)


def _render(tenant, run, data, surface, back):
    response = render_template("tenantpilot_support/bundle.html", tenant=tenant, membership=g.membership,
                               run=run, bundle=data, bundle_json=bundles.as_json(data), surface=surface,
                               back_url=back)
    # A diagnostics page holds live tenant data: keep it out of every cache.
    return response, 200, {"Cache-Control": "no-store"}
