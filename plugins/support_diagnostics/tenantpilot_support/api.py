"""/admin/api/v1/tenants/<tenant>/support-diagnostics: "Open support diagnostics" as
JSON. The same call as the page's POST (``views.record_opening``): the sanitized bundle,
built fresh, one audit event ``support_diagnostics.opened`` and one telemetry event,
with ``source_surface`` "api". The bundle holds no secrets, settings, e-mails or names
(``bundle``); the answer is never cached."""
from __future__ import annotations

import json

import marshmallow as ma
from flask import g

from tenantpilot.sdk import ApiBlueprint, ApiId, hookimpl, tenant_required
from . import bundle as bundles
from .views import CAPABILITY, record_opening, run_and_back

bp = ApiBlueprint("support_api", __name__, url_prefix="/tenants/<int:tenant_id>/support-diagnostics",
                  tag="Support diagnostics",
                  description="Support diagnostics of one tenant: a sanitized bundle for triage (audited).")
SURFACE = "api"


class OpenSchema(ma.Schema):
    operation_run_id = ApiId(allow_none=True, load_default=None, metadata={
        "description": "Open it for one run of this tenant (as the run page's action); omit for the tenant."})


class BundleSchema(ma.Schema):
    opening_id = ma.fields.Integer(allow_none=True, metadata={
        "description": "The audit event of this opening (null if the audit row was deferred)."})
    generated_at = ma.fields.String(required=True)
    tenant = ma.fields.Dict(required=True, metadata={"description": "id, external_id, status, created_at."})
    provider_connection = ma.fields.Dict(required=True, metadata={
        "description": "connected, provider, label, installed, health, checked_now, last_checked_at, "
                       "last_error_code (a code only)."})
    runs = ma.fields.List(ma.fields.Dict(), required=True, metadata={
        "description": "The last runs: id, type, label, status, outcome, times, summary_counts, failures_total, "
                       "failures (reason_code, scrubbed message)."})
    findings = ma.fields.Dict(required=True, metadata={
        "description": "installed, available, open_by_severity, open_total (when the findings plugin is present)."})


@bp.route("", methods=["POST"])
@tenant_required(CAPABILITY)
@bp.arguments(OpenSchema)
@bp.response(201, BundleSchema)
def open_diagnostics(tenant_id: int, body: dict):
    """Open support diagnostics: the sanitized bundle, with the opening recorded (audit + telemetry).

    404 for non-members and another tenant's run, 403 without support.diagnostics."""
    run, _back = run_and_back(tenant_id, body["operation_run_id"])
    data, event = record_opening(g.tenant, run, SURFACE)
    # The page's JSON view of the bundle: timestamps ISO 8601 with offset.
    plain = json.loads(bundles.as_json(data))
    return {"opening_id": event.id if event is not None else None, **plain}, 201, {"Cache-Control": "no-store"}


@hookimpl
def tenantpilot_register_api_blueprints(app, plane):
    return bp if plane == "admin" else None
