"""The "Open support diagnostics" action (SPEC 5), on the tenant dashboard and on the
tenant-plane operation-run viewer.

Only the POST builds a bundle and records anything: one audit event
``support_diagnostics.opened`` and one telemetry event ``product.support_diagnostics.opened``.
The bundle page is that POST's response and is never stored; a GET of the action's URL
(a reload, a bookmark) records nothing and goes back to the page it came from.
"""
from __future__ import annotations

import logging

from flask import Blueprint, abort, g, redirect, render_template, request, url_for
from flask_login import current_user

from tenantpilot import audit, telemetry
from tenantpilot.actors import Actor
from tenantpilot.extensions import db
from tenantpilot.models import OperationRun
from tenantpilot.planes import tenant_required
from tenantpilot.web.forms import EmptyForm

from . import bundle as bundles

bp = Blueprint("support_admin", __name__)
log = logging.getLogger("tenantpilot.support_diagnostics")
CAPABILITY = "support.diagnostics"
AUDIT_ACTION = "support_diagnostics.opened"
EVENT = "product.support_diagnostics.opened"


@bp.route("/t/<int:tenant_id>/support-diagnostics", methods=["GET", "POST"])
@bp.route("/t/<int:tenant_id>/runs/<int:run_id>/support-diagnostics", methods=["GET", "POST"])
@tenant_required(CAPABILITY)
def open_diagnostics(tenant_id: int, run_id: int | None = None):
    """POST: build, show and record a diagnostic bundle. 404 for non-members and for a
    run of another tenant, 403 for members without ``support.diagnostics``."""
    run = None
    if run_id is not None:
        run = db.session.get(OperationRun, run_id)
        if run is None or run.tenant_id != tenant_id:
            abort(404)
    back = (url_for("admin.tenant_run", tenant_id=tenant_id, run_id=run.id) if run
            else url_for("admin.tenant_home", tenant_id=tenant_id))
    if request.method == "GET":
        return redirect(back)
    if not EmptyForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")

    tenant = g.tenant
    surface = "operation_run_viewer" if run else "tenant_dashboard"
    data = bundles.build(tenant)
    metadata = {"source_surface": surface, "section_counts": bundles.section_counts(data)}
    if run:
        metadata["operation_run_id"] = run.id
    # No target label and a name-free summary: the tenant's name stays out of the row.
    audit.record(AUDIT_ACTION, actor=Actor.human(current_user), workspace_id=tenant.workspace_id,
                 tenant_id=tenant.id, target=("tenant", tenant.id, None),
                 summary=f"Support diagnostics opened from operation run #{run.id}" if run
                 else "Support diagnostics opened from the tenant dashboard",
                 metadata=metadata)
    try:  # record() never raises by contract; this guard keeps a broken recorder from costing the page
        telemetry.record(EVENT, workspace_id=tenant.workspace_id, tenant_id=tenant.id, user_id=current_user.id,
                         subject_type="operation_run" if run else None, subject_id=str(run.id) if run else None,
                         metadata={"source_surface": surface, "operation_type": run.type if run else None})
    except Exception:
        log.exception("support diagnostics: telemetry recording raised")
        db.session.rollback()

    response = render_template("tenantpilot_support/bundle.html", tenant=tenant, membership=g.membership,
                               run=run, bundle=data, bundle_json=bundles.as_json(data), surface=surface,
                               back_url=back)
    # A diagnostics page is a one-off answer to a POST: keep it out of every cache.
    return response, 200, {"Cache-Control": "no-store"}
