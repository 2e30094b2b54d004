"""Tenant plane: the Reports tab (/admin/t/<tenant>/reports) with the two generate
actions and the last run of each type, and a report's detail page. Pages only read;
the generate POST goes through the start seam (which checks membership and capability
again)."""
from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, url_for
from werkzeug.routing import BuildError
from flask_login import current_user
from sqlalchemy import select

from tenantpilot.sdk import Actor, SafeForm, arg_int, db, form_text, provider_connection, tenant_required
from . import service
from .models import StoredReport

bp = Blueprint("reports_admin", __name__)
PAGE_SIZE = 50


@bp.get("/t/<int:tenant_id>/reports")
@tenant_required("tenant.view")
def reports(tenant_id: int):
    """Newest reports first (keyset: ``?before=<id>``), the generate actions and the last
    run of each type; polls itself while one of those runs is active."""
    before = arg_int("before")
    q = select(StoredReport).where(StoredReport.tenant_id == tenant_id)
    if before:
        q = q.where(StoredReport.id < before)
    rows = db.session.scalars(q.order_by(StoredReport.id.desc()).limit(PAGE_SIZE + 1)).all()
    runs = service.last_runs(tenant_id)
    return render_template(
        "tenantpilot_reports/reports.html", tenant=g.tenant, membership=g.membership,
        reports=rows[:PAGE_SIZE], next_before=rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None,
        before=before, types=service.REPORT_TYPES, runs=runs, headline=service.headline,
        latest=service.latest_reports(tenant_id),
        active=any(r is not None and r.is_active for r in runs.values()),
        connection=provider_connection(tenant_id),
        can_generate=service.CAPABILITY in g.membership.capabilities and g.tenant.status == "active")


@bp.post("/t/<int:tenant_id>/reports/generate")
@tenant_required(service.CAPABILITY)  # non-member 404, member without reports.generate 403
def generate(tenant_id: int):
    if not SafeForm().validate_on_submit():
        abort(400, "The form expired; reload the page and try again.")
    report_type = form_text("report_type")
    if report_type not in service.REPORT_TYPES:
        abort(400, "Unknown report type.")
    result = service.start_report(tenant_id, report_type, Actor.human(current_user))
    if result.status in ("forbidden", "not_found"):
        abort(result.http_status)
    if result.status == "started":
        flash(f"{result.label} started (run #{result.run.id}).", "info")
    elif result.ok:  # deduped: the run of this type already queued for the tenant
        flash(f"{result.label} is already queued (run #{result.run.id}).", "info")
    else:
        flash(result.message, "error")
    return redirect(url_for(".reports", tenant_id=tenant_id))


@bp.get("/t/<int:tenant_id>/reports/<int:report_id>")
@tenant_required("tenant.view")
def report_detail(tenant_id: int, report_id: int):
    report = db.session.get(StoredReport, report_id)
    if report is None or report.tenant_id != tenant_id:
        abort(404)  # another tenant's report: do not say it exists
    spec = service.REPORT_TYPES.get(report.report_type)
    previous = service.latest_report(tenant_id, report.report_type, before_id=report.id)
    return render_template("tenantpilot_reports/report_detail.html", tenant=g.tenant, membership=g.membership,
                           report=report, spec=spec, previous=previous, summary=report.summary or {},
                           before=(previous.summary or {}) if previous else None,
                           required_features=service.REQUIRED_PERMISSIONS,
                           privileged_roles=service.PRIVILEGED_ROLES, findings_url=_findings_url(tenant_id))


def _findings_url(tenant_id: int) -> str | None:
    """The tenant's open permission findings, when the findings plugin serves that page."""
    if service.findings_api() is None:
        return None
    try:
        return url_for("findings_admin.findings", tenant_id=tenant_id, type="permission")
    except BuildError:
        return None
